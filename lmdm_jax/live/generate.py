"""`lmdm generate`: text prompt -> music, streamed block by block -> WAV.

  lmdm generate --prompt "slow Bach chorale for string ensemble" \\
      --seconds 30 --out out.wav [--json figures.json]

With no --checkpoint it plays the demo model shipped in
lmdm_jax/assets/demo (see docs/demo-model.md). Blocks are generated one
after another exactly as in a live session (the cached stream of
`lmdm_jax.streaming`: BC caches each finished block once), decoded with the
model's codec block by block (one latent frame of overlap, equal-power
crossfade), and written as 16-bit WAV. The figures printed (and written
with --json) are per-block latency (model, decode, both), the real-time
factor (audio seconds per block / compute seconds per block; > 1 keeps up
live) and the compile time, on whatever machine runs it.

Models with controls (the sketch and jam demo models,
lmdm_jax/assets/{sketch,jam}; docs/control.md) also take time-aligned
controls from audio files; without --checkpoint, --sketch plays the sketch
model and --accompany the jam model:

  lmdm generate --prompt "..." --sketch hum.wav \
      [--sketch-controls cqt_topk,loudness] --out out.wav
  lmdm generate --prompt "..." --accompany melody.wav [--visibility 0] \
      --out band.wav

--sketch: the file's loudness, brightness, pitch and top-k CQT melody (all
the model has, or those named) steer the generation frame by frame
(--delay S plays them S seconds late). --accompany: the file is the
partner's part; the model plays along, seeing the partner up to
--visibility seconds past each block's start (t_f: 0 = what a live
player has heard, negative = a live system's latency, positive = a look
ahead, at most one block); the mix of both is also written
(<out>_mix.wav). Generation lasts --seconds or, by default, the file.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Callable, Optional

import numpy as np


def _percentiles(xs):
  xs = np.asarray(xs, np.float64)
  return {"median": float(np.median(xs)), "p90": float(np.percentile(xs, 90)),
          "max": float(xs.max()), "mean": float(xs.mean())}


def check_args(prompt: str, seconds: Optional[float], out: str,
               steps: Optional[int], cfg_scale: Optional[float],
               sketch: Optional[str] = None,
               accompany: Optional[str] = None,
               delay_s: float = 0.0) -> None:
  """Raises ValueError for arguments that cannot make a file."""
  if not isinstance(prompt, str):
    raise ValueError("prompt must be a string")
  for flag, path in (("--sketch", sketch), ("--accompany", accompany)):
    if path is not None and not os.path.isfile(path):
      raise ValueError(f"{flag} file does not exist: {path}")
  if not math.isfinite(delay_s) or delay_s < 0:
    raise ValueError(f"--delay must be >= 0 seconds, got {delay_s}")
  if seconds is None:
    if sketch is None and accompany is None:
      raise ValueError("seconds is needed without --sketch/--accompany")
  elif not math.isfinite(seconds) or not 0 < seconds <= 3600:
    raise ValueError(f"seconds must be in (0, 3600], got {seconds}")
  if not out.lower().endswith(".wav"):
    raise ValueError(f"--out must name a .wav file, got {out!r}")
  parent = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(parent):
    raise ValueError(f"the folder of --out does not exist: {parent}")
  if steps is not None and not 1 <= steps <= 100:
    raise ValueError(f"steps must be in [1, 100], got {steps}")
  if cfg_scale is not None and (not math.isfinite(cfg_scale) or
                                cfg_scale < 0):
    raise ValueError(f"cfg scale must be finite and >= 0, got {cfg_scale}")


def control_tracks(pkg, codec, frames: int, sketch: Optional[str] = None,
                   sketch_controls=None, accompany: Optional[str] = None,
                   delay: int = 0, pitch_method: str = "yin"):
  """(ControlTrack or None, partner audio or None) for generate's files."""
  from lmdm_jax.live import track as track_lib
  from lmdm_jax.model.control_inputs import PARTNER
  from lmdm_jax.data.audio import read_converted
  dims = pkg.dit.control_dims
  controls, partner_audio = {}, None
  if sketch is not None:
    names = track_lib.sketch_names(dims, sketch_controls)
    x = read_converted(sketch, codec)
    controls.update(track_lib.sketch_track(
        x, codec, names, frames, pitch_method=pitch_method).controls)
  elif sketch_controls:
    raise ValueError("--sketch-controls needs --sketch FILE")
  if accompany is not None:
    if PARTNER not in dims:
      raise ValueError(f"{pkg.path} has no partner control (it has "
                       f"{sorted(dims) or 'no controls'}); --accompany needs "
                       f"a jam model such as lmdm_jax/assets/jam")
    partner_audio = read_converted(accompany, codec)
    controls.update(track_lib.partner_track(partner_audio, codec).controls)
  if not controls:
    return None, None
  n = max(a.shape[0] for a in controls.values())
  controls = {k: np.pad(a, [(0, n - a.shape[0]), (0, 0)])
              for k, a in controls.items()}
  return track_lib.ControlTrack(controls, delay=delay), partner_audio


def generate(prompt: str, seconds: Optional[float], out: str,
             checkpoint: Optional[str] = None, steps: Optional[int] = None,
             cfg_scale: Optional[float] = None, seed: int = 0,
             sampler: Optional[str] = None, progress: bool = True,
             log: Callable[[str], None] = print,
             sketch: Optional[str] = None, sketch_controls=None,
             accompany: Optional[str] = None,
             visibility_s: Optional[float] = None, delay_s: float = 0.0,
             pitch_method: str = "yin",
             latents_out: Optional[str] = None) -> dict:
  """Streams `seconds` of music for `prompt` into the WAV `out` (with
  --sketch / --accompany files: steered by them; see the module doc).

  -> figures: blocks, block_s, latency_s {model, decode, total} as
  {median, p90, max, mean}, real_time_factor, compile_s, wall_s, rms_dbfs,
  unknown_words, and the settings used. `latents_out`: also save the
  generated latents [frames, C] there (.npy), before decoding.
  """
  check_args(prompt, seconds, out, steps, cfg_scale, sketch, accompany,
             delay_s)
  if latents_out is not None and not latents_out.endswith(".npy"):
    raise ValueError(f"--save-latents must name a .npy file, got "
                     f"{latents_out!r}")
  from lmdm_jax import pretrained
  from lmdm_jax.live.player import Player, write_wav
  from lmdm_jax.live.session import LiveSession
  from lmdm_jax.streaming.state import StreamSpec

  t_start = time.perf_counter()
  pkg = pretrained.load(pretrained.for_controls(
      checkpoint, sketch=sketch is not None, partner=accompany is not None))
  if "needs" in pkg.text or "needs" in pkg.codec:
    raise ValueError(
        f"{pkg.path} is a converted SAO checkpoint: generating with it needs "
        f"its T5 encoder and Oobleck VAE, which `lmdm generate` does not "
        f"wire yet; use lmdm_jax.streaming with lmdm_jax.text.t5 and "
        f"lmdm_jax.codecs.oobleck (README, 'Use converted weights')")
  d = pkg.defaults
  steps = int(steps if steps is not None else d.get("steps", 8))
  cfg_scale = float(cfg_scale if cfg_scale is not None
                    else d.get("cfg_scale", 1.0))
  sampler = sampler or d.get("sampler", "pingpong")
  encoder = pkg.text_encoder()
  unknown = encoder.unknown_words(prompt) if hasattr(
      encoder, "unknown_words") else []
  if unknown:
    log(f"[generate] words the model never saw in training (no effect): "
        f"{' '.join(unknown)}")
  codec = pkg.make_codec()
  g = pkg.geometry
  delay = int(round(delay_s * codec.frame_rate))
  track, partner_audio = control_tracks(
      pkg, codec, frames=10 ** 7 if seconds is None else
      int(math.ceil(seconds * codec.frame_rate)) + 1, sketch=sketch,
      sketch_controls=sketch_controls, accompany=accompany, delay=delay,
      pitch_method=pitch_method)
  if seconds is None:
    seconds = (track.frames + delay) / codec.frame_rate
  t_f = 0
  if visibility_s is not None:
    if accompany is None:
      raise ValueError("--visibility applies to --accompany only")
    t_f = int(round(visibility_s * codec.frame_rate))
    if not -g.context <= t_f <= g.block:
      raise ValueError(
          f"--visibility must be in [{-g.context / codec.frame_rate:.2f}, "
          f"{g.block / codec.frame_rate:.2f}] s for this model (context "
          f"{g.context}, block {g.block} frames), got {visibility_s:g}")
  elif accompany is not None:
    t_f = int(d.get("partner_visibility", 0))
  spec = StreamSpec(pkg.dit, pkg.geometry, batch=1,
                    cond_tokens=pkg.cond_tokens, steps=steps,
                    sampler=sampler, cfg=cfg_scale != 1.0,
                    partner_visibility=t_f)
  t0 = time.perf_counter()
  session = LiveSession(pkg.params["dit"], spec, encoder.encode_one,
                        seed=seed, progress=lambda s: log(f"[generate] {s}"))
  session.set_prompts({prompt: 1.0})
  session.set_cfg(cfg_scale)
  if track is not None:
    session.control_source = lambda i: track.block_window(i, g.context,
                                                          g.block)
  compile_s = time.perf_counter() - t0
  player = Player(session, codec, overlap=1)
  block_s = g.block * codec.hop / codec.sample_rate
  blocks = max(1, math.ceil(seconds / block_s))
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=blocks, unit="block", dynamic_ncols=True,
               file=sys.stderr)

  def on_block(i):
    if bar is not None:
      bar.update(1)
      bar.set_postfix(rtf=f"{block_s / player.compute_s[-1]:.2f}")

  t_gen = time.perf_counter()
  audio = player.render(blocks, on_block)
  gen_s = time.perf_counter() - t_gen
  if bar is not None:
    bar.close()
  audio = audio[:, :int(round(seconds * codec.sample_rate))]
  peak = float(np.abs(audio).max())
  if peak > 0.89:                       # never clip the file
    audio = audio * (0.89 / peak)
  write_wav(out, audio, codec.sample_rate)
  if latents_out is not None:
    np.save(latents_out, session.performance()[0])
  mix_out = None
  if partner_audio is not None:
    n = audio.shape[1]
    p = np.pad(partner_audio, [(0, 0), (0, max(0, n - partner_audio.shape[1]))])
    mix = audio + p[:, :n]
    mix = mix * min(1.0, 0.89 / max(float(np.abs(mix).max()), 1e-9))
    mix_out = os.path.splitext(out)[0] + "_mix.wav"
    write_wav(mix_out, mix, codec.sample_rate)
  model_s = [e["compute_s"] for e in session.log]
  total_s = list(player.compute_s)
  decode_s = [t - m for t, m in zip(total_s, model_s)]
  rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
  import jax
  figures = {
      "prompt": prompt, "out": os.path.abspath(out),
      "model": os.path.abspath(pkg.path), "seconds": audio.shape[1] /
      codec.sample_rate, "blocks": blocks, "block_s": block_s,
      "steps": steps, "cfg_scale": cfg_scale, "sampler": sampler,
      "seed": seed, "mode": g.mode,
      "latency_s": {"model": _percentiles(model_s),
                    "decode": _percentiles(decode_s),
                    "total": _percentiles(total_s)},
      "real_time_factor": block_s / float(np.median(total_s)),
      "real_time_factor_model_only": block_s / float(np.median(model_s)),
      "compile_s": compile_s, "generate_s": gen_s,
      "wall_s": time.perf_counter() - t_start,
      "rms_dbfs": 20 * math.log10(max(rms, 1e-12)),
      "unknown_words": unknown,
      "sketch": sketch, "sketch_controls": (
          sorted(track.controls) if track is not None else []),
      "accompany": accompany, "mix_out": mix_out,
      "partner_visibility_frames": t_f if accompany is not None else None,
      "delay_frames": delay,
      "device": f"{jax.devices()[0].platform} x{jax.device_count()}",
      "jax": jax.__version__,
  }
  return figures


def _cli(args) -> int:
  try:
    seconds = args.seconds
    if seconds is None and args.sketch is None and args.accompany is None:
      seconds = 30.0
    figures = generate(args.prompt, seconds, args.out,
                       checkpoint=args.checkpoint, steps=args.steps,
                       cfg_scale=args.cfg, seed=args.seed,
                       sampler=args.sampler, progress=not args.no_progress,
                       log=lambda s: print(s, file=sys.stderr, flush=True),
                       sketch=args.sketch,
                       sketch_controls=[c for c in (args.sketch_controls or
                                                    "").split(",") if c],
                       accompany=args.accompany,
                       visibility_s=args.visibility, delay_s=args.delay,
                       pitch_method=args.pitch_method,
                       latents_out=args.save_latents)
  except (ValueError, FileNotFoundError) as e:
    print(f"lmdm generate: error: {e}", file=sys.stderr)
    return 2
  lat = figures["latency_s"]
  print(f"wrote {figures['out']}: {figures['seconds']:.1f} s, "
        f"{figures['blocks']} blocks of {figures['block_s']:.2f} s, "
        f"{figures['steps']} steps, cfg {figures['cfg_scale']:g}")
  print(f"per-block latency (median / p90 / max): model "
        f"{lat['model']['median'] * 1e3:.0f} / {lat['model']['p90'] * 1e3:.0f}"
        f" / {lat['model']['max'] * 1e3:.0f} ms, decode "
        f"{lat['decode']['median'] * 1e3:.0f} ms, total "
        f"{lat['total']['median'] * 1e3:.0f} ms")
  print(f"real-time factor {figures['real_time_factor']:.2f}x "
        f"(model only {figures['real_time_factor_model_only']:.2f}x); "
        f"compile {figures['compile_s']:.1f} s; {figures['device']}")
  if figures["mix_out"]:
    print(f"wrote {figures['mix_out']} (partner + generation)")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(figures, f, indent=2)
  return 0


def add_arguments(g: argparse.ArgumentParser) -> None:
  """`lmdm generate`'s arguments (the command is registered in
  lmdm_jax/cli.py)."""
  g.add_argument("--prompt", required=True)
  g.add_argument("--seconds", type=float, default=None,
                 help="length (default 30 s, or the --sketch/--accompany "
                      "file's)")
  g.add_argument("--out", default="out.wav")
  g.add_argument("--checkpoint", default=None,
                 help="an `lmdm export` package (default: the shipped demo; "
                      "with --accompany the shipped jam model, with --sketch "
                      "the sketch model)")
  g.add_argument("--steps", type=int, default=None,
                 help="denoising steps per block (default: the model's)")
  g.add_argument("--cfg", type=float, default=None,
                 help="classifier-free guidance scale (1 = off)")
  g.add_argument("--sampler", default=None, choices=("euler", "pingpong"))
  g.add_argument("--seed", type=int, default=0)
  g.add_argument("--json", default=None, help="write the figures here")
  g.add_argument("--sketch", default=None, metavar="FILE",
                 help="audio whose sketch features steer the generation "
                      "(models with controls)")
  g.add_argument("--sketch-controls", default=None,
                 help="which of the model's sketch controls to take from "
                      "--sketch, e.g. cqt_topk,loudness (default: all)")
  g.add_argument("--accompany", default=None, metavar="FILE",
                 help="the partner's part to play along with (jam models)")
  g.add_argument("--visibility", type=float, default=None, metavar="S",
                 help="--accompany: partner seen up to S seconds past each "
                      "block's start (default: the model's, 0)")
  g.add_argument("--delay", type=float, default=0.0, metavar="S",
                 help="--sketch: play the controls S seconds late")
  g.add_argument("--pitch-method", default="yin", choices=("yin", "pyin"))
  g.add_argument("--save-latents", default=None, metavar="FILE.npy",
                 help="also save the generated latents [frames, channels]")
  g.add_argument("--no-progress", action="store_true")
