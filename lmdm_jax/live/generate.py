"""`lmdm generate`: text prompt -> music, streamed block by block -> WAV.

  lmdm generate --prompt "slow Bach chorale for string ensemble" \\
      --seconds 30 --out out.wav [--json figures.json]

With no --checkpoint it plays the demo model shipped in
lmdm_jax/assets/demo (see docs/demo-model.md). Blocks are generated one
after another exactly as in a live session (the cached stream of
`lmdm_jax.streaming`: BC caches each finished block once), decoded with the
model's codec block by block (one latent frame of overlap, equal-power
crossfade), passed through the live output stage (automatic gain and a
true-peak limiter at -1 dBTP, block by block: lmdm_jax/streaming/
output_stage.py) and written as 16-bit WAV. A generation that comes out
non-finite (the stream replaces and counts such blocks) is refused: exit
1, nothing written. The figures printed (and written
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

Memory does not grow with --seconds: each block's audio goes to a float32
spool file next to --out as it is made (and --save-latents' latents to
disk), and the WAV is written from it in chunks once the peak is known
(lmdm_jax/live/recording.py). Ctrl-C or SIGTERM stops after the
current block and writes what was made as a valid WAV, with the figures
JSON (--json, else OUT.json, "interrupted": "SIGINT"/"SIGTERM"); the exit
code is then 130 (Ctrl-C) or 143 (SIGTERM), 128 + the signal, as a shell
reports a command killed by it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

import numpy as np

from lmdm_jax.cliutil import printable
from lmdm_jax.live import control_ranges as ranges
from lmdm_jax.live.latency import percentiles


class NonFiniteResult(RuntimeError):
  """The generation came out non-finite: nothing was written."""


class Interrupted(KeyboardInterrupt):
  """SIGTERM (or SIGINT) while generating; .signum says which."""

  def __init__(self, signum: int = signal.SIGINT):
    super().__init__(signal.Signals(signum).name)
    self.signum = int(signum)


def _raise_interrupted(signum, frame):
  del frame
  raise Interrupted(signum)


@contextlib.contextmanager
def _signals(handler):
  """SIGINT and SIGTERM -> handler inside (main thread only; elsewhere a
  no-op: signals reach the main thread)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  old = {s: signal.signal(s, handler) for s in (signal.SIGINT,
                                                signal.SIGTERM)}
  try:
    yield
  finally:
    for s, h in old.items():
      signal.signal(s, h)


def check_writable(path: str, flag: str) -> None:
  """ValueError unless `path` can be created or overwritten (tried, not
  guessed from permission bits; a file it creates is removed again)."""
  if os.path.isdir(path):
    raise ValueError(f"{flag} names a folder, not a file: {path}")
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise ValueError(f"the folder of {flag} does not exist: {parent}")
  existed = os.path.exists(path)
  try:
    with open(path, "ab"):
      pass
  except OSError as e:
    raise ValueError(f"{flag} is not writable: {path} ({e.strerror})") from e
  if not existed:
    os.remove(path)


def check_args(prompt: str, seconds: Optional[float], out: str,
               steps: Optional[int], cfg_scale: Optional[float],
               sketch: Optional[str] = None,
               accompany: Optional[str] = None,
               delay_s: float = 0.0, extra_outputs=(), seed: int = 0) -> None:
  """Raises ValueError for arguments that cannot make a file (before any
  model is loaded or compiled); MissingExtra when --sketch/--accompany
  lack the `data` extra. extra_outputs: (flag, path) also written."""
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
  check_writable(out, "--out")
  for flag, path in extra_outputs:
    if path is not None:
      check_writable(path, flag)
  if sketch is not None or accompany is not None:
    from lmdm_jax.cliutil import require
    what = "--sketch" if sketch is not None else "--accompany"
    require("soundfile", "data", f"{what} (reading audio)")
    require("librosa", "data", f"{what} (audio analysis)")
  if steps is not None:
    ranges.check_steps(steps, what="--steps")
  if cfg_scale is not None:
    ranges.check_cfg(cfg_scale, what="--cfg")
  ranges.check_seed(seed, what="--seed")


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
             latents_out: Optional[str] = None,
             json_out: Optional[str] = None) -> dict:
  """Streams `seconds` of music for `prompt` into the WAV `out` (with
  --sketch / --accompany files: steered by them; see the module doc).

  -> figures: blocks, block_s, latency_s {model, decode, total} as
  {median, p90, max, mean}, real_time_factor, compile_s, wall_s, rms_dbfs,
  unknown_words, levels (the output stage's), rejected_blocks, and the
  settings used. Raises NonFiniteResult (writing nothing) when a block or
  decoded sample came out non-finite. `latents_out`: also save the
  generated latents [frames, C] there (.npy), before decoding.
  """
  if latents_out is not None and not latents_out.endswith(".npy"):
    raise ValueError(f"--save-latents must name a .npy file, got "
                     f"{latents_out!r}")
  check_args(prompt, seconds, out, steps, cfg_scale, sketch, accompany,
             delay_s, seed=seed,
             extra_outputs=[("--save-latents", latents_out),
                            ("--json", json_out)])
  from lmdm_jax import pretrained
  from lmdm_jax.live import block_level, output_stage
  from lmdm_jax.live.player import Player
  from lmdm_jax.live.recording import LatentLog, Spool
  from lmdm_jax.live.session import LiveSession
  from lmdm_jax.streaming.state import StreamSpec
  from lmdm_jax.text.notes import prompt_notes

  t_start = time.perf_counter()
  pkg = pretrained.load(pretrained.for_controls(
      checkpoint, sketch=sketch is not None, partner=accompany is not None))
  d = pkg.defaults
  steps = int(steps if steps is not None else d.get("steps", 8))
  cfg_scale = float(cfg_scale if cfg_scale is not None
                    else d.get("cfg_scale", 1.0))
  sampler = sampler or d.get("sampler", "pingpong")
  encoder = pkg.text_encoder()
  unknown = encoder.unknown_words(prompt) if hasattr(
      encoder, "unknown_words") else []
  notes = prompt_notes(encoder, prompt)
  for note in notes:
    log(f"[generate] prompt: {note}")
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
                        global_cond=pkg.global_cond(), seed=seed,
                        progress=lambda s: log(f"[generate] {s}"))
  session.set_prompts({prompt: 1.0})
  session.set_cfg(cfg_scale)
  if track is not None:
    session.control_source = lambda i: track.block_window(i, g.context,
                                                          g.block)
  compile_s = time.perf_counter() - t0
  # The live output stage (automatic gain, or the package's fixed gain, and
  # a true-peak limiter, block by block) sets the file's level too: no
  # end-of-run rescale, so the level does not depend on the loudest moment,
  # and a block written is final.
  player = Player(session, codec, overlap=1,
                  output=output_stage.for_package(pkg, codec),
                  level=block_level.for_package(pkg, codec))
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

  # Blocks go to disk as they come (memory independent of `seconds`).
  n_out = int(round(seconds * codec.sample_rate))
  spool = Spool(os.path.dirname(os.path.abspath(out)), codec.channels)
  session.recorded = LatentLog(latents_out)
  interrupted = None
  t_gen = time.perf_counter()
  try:
    try:
      written = 0
      for chunk in player.iter_render(blocks, on_block):
        chunk = chunk[:, :n_out - written]
        spool.write(chunk)
        written += chunk.shape[1]
    except KeyboardInterrupt as e:      # Ctrl-C / SIGTERM: keep what we have
      interrupted = signal.Signals(getattr(e, "signum",
                                           signal.SIGINT)).name
      if bar is not None:
        bar.close()
        bar = None
      if spool.frames == 0:
        raise
      log(f"[generate] interrupted ({interrupted}) after "
          f"{len(session.log)} of {blocks} blocks; writing them")
    gen_s = time.perf_counter() - t_gen
    if bar is not None:
      bar.close()
    levels = player.output.levels()
    if session.rejected_blocks or levels["nonfinite_samples"]:
      raise NonFiniteResult(
          f"the generation came out non-finite ({len(session.rejected_blocks)}"
          f" of {blocks} blocks, first block "
          f"{(session.rejected_blocks or ['-'])[0]}; "
          f"{levels['nonfinite_samples']} decoded samples); nothing written. "
          f"The model diverged under these settings (cfg {cfg_scale:g}, steps "
          f"{steps}): lower --cfg or change --steps")
    # A second Ctrl-C would cut the files short: finish them first.
    with _signals(signal.SIG_IGN):
      audio_info = _write_outputs(spool, out, codec, partner_audio,
                                  session.recorded)
  finally:
    spool.close()
    session.recorded.discard()          # no-op once finished
  mix_out = audio_info["mix_out"]
  model_s = [e["compute_s"] for e in session.log]
  total_s = list(player.compute_s)
  decode_s = [t - m for t, m in zip(total_s, model_s)]
  rms = audio_info["rms"]
  import jax
  figures = {
      "prompt": prompt, "out": os.path.abspath(out),
      "model": os.path.abspath(pkg.path),
      "seconds": audio_info["frames"] / codec.sample_rate,
      "blocks": len(session.log), "blocks_planned": blocks,
      "interrupted": interrupted, "block_s": block_s,
      "steps": steps, "cfg_scale": cfg_scale, "sampler": sampler,
      "seed": seed, "mode": g.mode,
      "latency_s": {"model": percentiles(model_s),
                    "decode": percentiles(decode_s),
                    "total": percentiles(total_s)},
      "real_time_factor": (block_s / float(np.median(total_s))
                           if total_s else None),
      "real_time_factor_model_only": (block_s / float(np.median(model_s))
                                      if model_s else None),
      "compile_s": compile_s, "generate_s": gen_s,
      "wall_s": time.perf_counter() - t_start,
      "rms_dbfs": 20 * math.log10(max(rms, 1e-12)),
      "unknown_words": unknown, "prompt_notes": notes,
      "levels": levels, "rejected_blocks": session.rejected_blocks,
      "peak_before_scaling": audio_info["peak"],
      "latents_out": audio_info["latents_out"],
      "sketch": sketch, "sketch_controls": (
          sorted(track.controls) if track is not None else []),
      "accompany": accompany, "mix_out": mix_out,
      "partner_visibility_frames": t_f if accompany is not None else None,
      "delay_frames": delay,
      "device": f"{jax.devices()[0].platform} x{jax.device_count()}",
      "jax": jax.__version__,
  }
  return figures


def _write_outputs(spool, out, codec, partner_audio, latent_log) -> dict:
  """The WAV (peak-normalised to 0.89 when louder: never clipped), the
  latents .npy and the --accompany mix, read from disk chunk by chunk.
  -> {frames, peak, rms, mix_out, latents_out}."""
  frames, sr = spool.frames, codec.sample_rate
  peak = spool.peak
  scale = 0.89 / peak if peak > 0.89 else 1.0   # never clip the file
  spool.to_wav(out, sr, scale, frames)
  sumsq = 0.0
  for x in spool.chunks(frames):
    sumsq += float(np.sum(np.square(x, dtype=np.float64)))
  rms = math.sqrt(sumsq / max(frames * spool.channels, 1)) * scale
  latents_out = latent_log.finish() if hasattr(latent_log, "finish") \
      else None
  mix_out = None
  if partner_audio is not None:
    def partner(start, n):
      p = partner_audio[:, start:start + n]
      return np.pad(p, [(0, 0), (0, n - p.shape[1])])
    mix_peak = spool.peak_of(lambda s, n: partner(s, n) * np.float32(
        1 / scale), frames) * scale
    mix_scale = scale * min(1.0, 0.89 / max(mix_peak, 1e-9))
    mix_out = os.path.splitext(out)[0] + "_mix.wav"
    spool.to_wav(mix_out, sr, mix_scale, frames,
                 add=lambda s, n: partner(s, n) * np.float32(1 / scale))
  return {"frames": frames, "peak": peak, "rms": rms, "mix_out": mix_out,
          "latents_out": latents_out}


def _cli(args) -> int:
  """Errors go to cli.main's handler; Ctrl-C / SIGTERM while generating
  keep the blocks made (module doc) and exit 128 + the signal."""
  seconds = args.seconds
  if seconds is None and args.sketch is None and args.accompany is None:
    seconds = 30.0
  with _signals(_raise_interrupted):
    figures = generate(args.prompt, seconds, args.out,
                       checkpoint=args.checkpoint, steps=args.steps,
                       cfg_scale=args.cfg, seed=args.seed,
                       sampler=args.sampler, progress=not args.no_progress,
                       log=lambda s: print(printable(s), file=sys.stderr,
                                           flush=True),
                       sketch=args.sketch,
                       sketch_controls=[c for c in (args.sketch_controls or
                                                    "").split(",") if c],
                       accompany=args.accompany,
                       visibility_s=args.visibility, delay_s=args.delay,
                       pitch_method=args.pitch_method,
                       latents_out=args.save_latents,
                       json_out=args.json)
  json_out = args.json
  if figures["interrupted"] and not json_out:
    json_out = os.path.splitext(args.out)[0] + ".json"
  if json_out:
    with open(json_out, "w") as f:
      json.dump(figures, f, indent=2)
  if figures["interrupted"]:
    print(f"interrupted ({figures['interrupted']}): wrote "
          f"{printable(figures['out'])} ({figures['seconds']:.1f} s, "
          f"{figures['blocks']} of {figures['blocks_planned']} blocks) and "
          f"{printable(json_out)}", flush=True)
    return 128 + int(signal.Signals[figures["interrupted"]])
  lat = figures["latency_s"]
  print(f"wrote {printable(figures['out'])}: {figures['seconds']:.1f} s, "
        f"{figures['blocks']} blocks of {figures['block_s']:.2f} s, "
        f"{figures['steps']} steps, cfg {figures['cfg_scale']:g}")
  print(f"per-block latency (median / p90 / max): model "
        f"{lat['model']['median'] * 1e3:.0f} / {lat['model']['p90'] * 1e3:.0f}"
        f" / {lat['model']['max'] * 1e3:.0f} ms, decode "
        f"{lat['decode']['median'] * 1e3:.0f} ms, total "
        f"{lat['total']['median'] * 1e3:.0f} ms")
  lv = figures["levels"]
  print(f"level {lv['rms_dbfs']:.1f} dBFS RMS, peak {lv['peak_dbfs']:.1f} "
        f"dBFS (gain {lv['gain_db']:.1f} dB, {lv['gain']}), limited "
        f"{100 * lv['limited_fraction']:.1f} % of samples (at most "
        f"{lv['max_gain_reduction_db']:.1f} dB)")
  print(f"real-time factor {figures['real_time_factor']:.2f}x "
        f"(model only {figures['real_time_factor_model_only']:.2f}x); "
        f"compile {figures['compile_s']:.1f} s; {figures['device']}")
  if figures["mix_out"]:
    print(f"wrote {printable(figures['mix_out'])} (partner + generation)")
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
