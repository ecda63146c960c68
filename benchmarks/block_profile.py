"""Level and spectral contrast by position inside a generated block.

Why blocks start louder than they end (docs/demo-model.md, "Sampling
settings"): for held-out pieces encoded by the model's codec, three kinds
of blocks are profiled frame by frame against each block's own median:

  real      the real latents at the same positions (the floor);
  forced    one block generated from a real context of `context` frames
            (teacher forcing: `LiveSession.prime` with real latents), at
            `forced_blocks` positions per piece;
  free      blocks 2..`blocks` of a stream primed once with real latents
            (its later contexts are its own output).

Per frame: level = 10 log10 of the summed energy of the codec's value
channels (semitone: the 52 semitone amplitudes and 8 noise bands, i.e.
`codec.slices`), and contrast = the standard deviation over those channels
of the latent (a flat spectrum has none). Reported per kind: the mean
profile [block] of level minus the block's median over frames >= 4, the
first two frames' excess with its standard error over blocks, and the
contrast profile.

  PYTHONPATH=. python3 benchmarks/block_profile.py --heldout DEMO/audio/heldout \\
      --clips 16 --steps 8 --cfg 2 --json benchmarks/results/block_profile_demo.json

Needs a codec with `slices` and `offset`/`scale` value latents (semitone).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

BODY_FROM = 4          # frames >= this are the block's body


def value_channels(codec) -> slice:
  """The channels whose latent is (ln energy - offset) / scale."""
  if not hasattr(codec, "slices"):
    raise ValueError(f"codec {codec.name!r} has no value-channel layout; "
                     f"block_profile needs the semitone codec")
  return slice(0, codec.slices[1].stop)


def level_db(latents, codec) -> np.ndarray:
  """[frames, C] latents -> [frames] dB of the summed value-channel energy."""
  z = np.asarray(latents, np.float64)[:, value_channels(codec)]
  energy = np.exp(z * codec.scale + codec.offset).sum(-1)
  return 10.0 * np.log10(energy + 1e-30)


def excess(latents, codec, block: int) -> np.ndarray:
  """[n * block, C] -> [n, block]: each frame's level minus its block's
  median level over frames >= BODY_FROM."""
  lv = level_db(latents, codec)
  if lv.size % block:
    raise ValueError(f"{lv.size} frames is not whole blocks of {block}")
  lv = lv.reshape(-1, block)
  return lv - np.median(lv[:, BODY_FROM:], axis=1, keepdims=True)


def contrast(latents, codec, block: int) -> np.ndarray:
  """[n * block, C] -> [n, block] std over the value channels."""
  z = np.asarray(latents, np.float64)[:, value_channels(codec)]
  return z.std(-1).reshape(-1, block)


def summarise(ex: np.ndarray, con: np.ndarray) -> dict:
  first = ex[:, :2].mean(1)
  return {"blocks": int(ex.shape[0]),
          "first2_db": float(first.mean()),
          "first2_db_stderr": float(first.std() / np.sqrt(len(first))),
          "last2_db": float(ex[:, -2:].mean()),
          "profile_db": [round(float(v), 3) for v in ex.mean(0)],
          "contrast_mean": float(con.mean()),
          "contrast_profile": [round(float(v), 4) for v in con.mean(0)]}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--model", default="demo")
  p.add_argument("--heldout", required=True)
  p.add_argument("--clips", type=int, default=16)
  p.add_argument("--every", type=int, default=1,
                 help="take every N-th file (spreads --clips over the "
                      "folder's groups, which list alphabetically)")
  p.add_argument("--offset", type=float, default=5.0,
                 help="seconds into each piece")
  p.add_argument("--blocks", type=int, default=8,
                 help="free-running blocks per piece (the first is dropped)")
  p.add_argument("--forced-blocks", type=int, default=2)
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--sampler", default=None, choices=("euler", "pingpong"))
  p.add_argument("--cfg", type=float, default=None)
  p.add_argument("--json", default=None)
  p.add_argument("--generated", type=int, default=0, metavar="N",
                 help="also profile N prompt-only generations (`lmdm "
                      "generate` with the captions of the folder's first "
                      "files, --seconds each) in audio, per latent frame, "
                      "as the player plays them")
  p.add_argument("--seconds", type=float, default=12.0)
  p.add_argument("--skip-seconds", type=float, default=0.0,
                 help="--generated: leave out each stream's first seconds "
                      "(whole blocks): the start-up from an empty context "
                      "tilts differently from a running stream")
  p.add_argument("--calibrate", default=None, metavar="PKG",
                 help="with --generated: add the generations' profile "
                      "(3-frame moving average, zero mean) to package "
                      "PKG's defaults.block_level_db (lmdm_jax/live/"
                      "block_level.py; at --cfg other than PKG's default: "
                      "an entry of its block_level_db_by_cfg); run it on "
                      "training pieces, not the evaluation's, and on PKG "
                      "as --model")
  args = p.parse_args(argv)
  if args.blocks < 2 or args.forced_blocks < 1 or args.clips < 1:
    p.error("need --blocks >= 2, --forced-blocks >= 1, --clips >= 1")
  if args.calibrate and not args.generated:
    p.error("--calibrate needs --generated N (the profile as played)")

  import soundfile as sf
  from lmdm_jax import pretrained
  from lmdm_jax.bench.codec import list_audio_files
  from lmdm_jax.live.session import LiveSession
  from lmdm_jax.streaming.state import StreamSpec

  log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
  t0 = time.time()
  pkg = pretrained.load(args.model)
  codec = pkg.make_codec()
  value_channels(codec)
  g, d = pkg.geometry, pkg.defaults
  steps = int(args.steps or d.get("steps", 8))
  cfg = float(args.cfg if args.cfg is not None else d.get("cfg_scale", 1.0))
  sampler = args.sampler or d.get("sampler", "pingpong")
  spec = StreamSpec(pkg.dit, g, batch=1, cond_tokens=pkg.cond_tokens,
                    steps=steps, sampler=sampler, cfg=cfg != 1.0)
  session = LiveSession(pkg.params["dit"], spec,
                        pkg.text_encoder().encode_one,
                        global_cond=pkg.global_cond())
  session.set_cfg(cfg)
  if args.every < 1:
    p.error("--every must be >= 1")
  files = list_audio_files(args.heldout)[::args.every]
  if not files:
    raise SystemExit(f"no audio under {args.heldout}")
  s, o = g.context, g.block
  need = s + max(args.forced_blocks, args.blocks) * o
  kinds = {"real": ([], []), "forced": ([], []), "free": ([], [])}

  def add(kind, z):
    kinds[kind][0].append(excess(z, codec, o))
    kinds[kind][1].append(contrast(z, codec, o))

  used = 0
  for f in files:
    if used == args.clips:
      break
    info = sf.info(f)
    seconds = need * codec.hop / codec.sample_rate + 0.1
    if info.duration < args.offset + seconds:
      continue
    x, sr = sf.read(f, dtype="float32", always_2d=True,
                    start=int(args.offset * info.samplerate),
                    frames=int(seconds * info.samplerate))
    if sr != codec.sample_rate:
      raise SystemExit(f"{f}: {sr} Hz, the codec wants {codec.sample_rate}")
    z = codec.encode(x.T)[:need]
    cap = os.path.splitext(f)[0] + ".txt"
    session.set_prompts({(open(cap).read().strip()
                          if os.path.exists(cap) else ""): 1.0})
    session.set_seed(1000 + used)
    for j in range(args.forced_blocks):
      p0 = s + o * j
      session.prime(z[None, p0 - s:p0])
      add("forced", session.next_block()[0])
      add("real", z[p0:p0 + o])
    session.prime(z[None, :s])
    free = [session.next_block()[0] for _ in range(args.blocks)]
    add("free", np.concatenate(free[1:]))
    used += 1
    log(f"[block_profile] {used}/{args.clips} {os.path.basename(f)}")
  if used == 0:
    raise SystemExit(f"no piece under {args.heldout} is {args.offset} s + "
                     f"{need} frames long")
  out = {"model": args.model, "steps": steps, "sampler": sampler,
         "cfg_scale": cfg, "clips": used, "block_frames": o,
         "context_frames": s, "seconds": round(time.time() - t0, 1)}
  for kind, (ex, con) in kinds.items():
    out[kind] = summarise(np.concatenate(ex), np.concatenate(con))
    log(f"[block_profile] {kind}: first 2 frames "
        f"{out[kind]['first2_db']:+.2f} ± "
        f"{out[kind]['first2_db_stderr']:.2f} dB, contrast "
        f"{out[kind]['contrast_mean']:.3f}")
  if args.generated:
    out["generated"] = generated_profile(
        args.model, files[:args.generated], args.seconds, g.block * codec.hop,
        codec.hop, steps, cfg, sampler, args.skip_seconds)
    log(f"[block_profile] generated: seam frame "
        f"{out['generated']['profile_db'][0]:+.2f} dB, first 6 frames "
        f"{np.mean(out['generated']['profile_db'][:6]):+.2f} dB")
  if args.json:
    with open(args.json, "w") as fh:
      json.dump(out, fh, indent=1)
  if args.calibrate:
    from lmdm_jax.live import block_level
    if os.path.realpath(args.calibrate) != os.path.realpath(pkg.path):
      raise SystemExit(f"block_profile --calibrate {args.calibrate}: "
                       f"measure that package (--model {args.calibrate}): "
                       f"what is left is added to its own profile")
    default_cfg = float(d.get("cfg_scale", 1.0))
    if cfg != default_cfg and d.get("block_level_db") is None:
      raise SystemExit(f"block_profile --calibrate: calibrate the package's "
                       f"default CFG ({default_cfg:g}) first: a profile at "
                       f"another scale is added beside that one")
    current = block_level.for_package(pkg, codec)
    old = current.profile(cfg) if current else np.zeros(g.block)
    level = [round(float(a) + b, 2) for a, b in zip(
        old, calibration(out["generated"]["profile_db"]))]
    try:
      block_level.BlockLevel(codec, level)   # what the players will accept
    except ValueError as e:
      raise SystemExit(f"block_profile --calibrate: not written: {e}")
    write_calibration(args.calibrate, level, cfg=cfg, note={
        "block_level": f"benchmarks/block_profile.py --generated "
                       f"{out['generated']['clips']} on {args.heldout} "
                       f"(every {args.every}), {args.seconds:g} s each "
                       f"from {args.skip_seconds:g} s, "
                       f"{steps} {sampler} steps, CFG {cfg:g}, "
                       f"{time.strftime('%Y-%m-%d')}"})
    log(f"[block_profile] wrote block_level_db {level} to "
        f"{args.calibrate}")
  return 0


def generated_profile(model, files, seconds, block_samples, hop, steps, cfg,
                      sampler, skip_seconds: float = 0.0) -> dict:
  """Prompt-only generations with the files' captions, as `lmdm
  generate` writes them (the package's block level and output stage
  included) -> their level per latent frame of a block (`listen.
  seam_profile`, power over the blocks of a clip, dB relative to the
  clip's body median), averaged over clips; the first `skip_seconds` of
  each (rounded down to whole blocks) are left out."""
  import tempfile
  import soundfile as sf
  from lmdm_jax.eval import listen
  from lmdm_jax.live.generate import generate
  profiles = []
  with tempfile.TemporaryDirectory() as tmp:
    for i, f in enumerate(files):
      cap = os.path.splitext(f)[0] + ".txt"
      prompt = open(cap).read().strip() if os.path.exists(cap) else ""
      path = os.path.join(tmp, f"g{i}.wav")
      generate(prompt, seconds, path, checkpoint=model, steps=steps,
               cfg_scale=cfg, sampler=sampler, seed=2000 + i,
               progress=False, log=lambda s: None)
      x, sr = sf.read(path, dtype="float32", always_2d=True)
      skip = int(skip_seconds * sr) // block_samples * block_samples
      prof = np.asarray(listen.seam_profile(
          x.T, sr, block_samples, frame_s=hop / sr, offset=skip)[
              "profile_db"])
      profiles.append(prof - np.median(prof[BODY_FROM:]))
  mean = np.mean(profiles, 0)
  return {"clips": len(profiles), "seconds": seconds,
          "skip_seconds": skip_seconds,
          "profile_db": [round(float(v), 3) for v in mean],
          "profile_db_stderr": [round(float(v), 3) for v in
                                np.std(profiles, 0) / np.sqrt(len(profiles))]}


def calibration(profile_db) -> list:
  """[block] mean level by position (dB over each clip's body median,
  `generated_profile`) -> what a package adds to its profile: a 3-frame
  moving average (edges held), so the clips' noise (0.15-0.4 dB standard
  error per frame at 16-32 clips) does not become a pattern of its own,
  less its mean over the block: a median-relative level is offset from
  the mean level in real music too (skewed log levels), and the
  correction must not change the block's level, only even it out."""
  x = np.asarray(profile_db, np.float64)
  padded = np.concatenate([x[:1], x, x[-1:]])
  smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0
  return [round(float(v), 2) for v in smooth - smooth.mean()]


def write_calibration(path: str, level_db: list, note: dict,
                      cfg: float = None) -> None:
  """Sets the block level profile of the package at `path` measured at
  guidance `cfg` (model.json rewritten atomically; the weights are
  untouched): at the package's default CFG (or cfg None)
  defaults.block_level_db, at any other scale an entry of
  defaults.block_level_db_by_cfg (lmdm_jax/live/block_level.py), which
  starts with the default scale's profile so the two agree there. Notes
  add to the ones already there ("; then "), so the provenance of a
  profile built over several runs stays whole."""
  mj = os.path.join(path, "model.json")
  with open(mj) as fh:
    doc = json.load(fh)
  defaults = doc.setdefault("defaults", {})
  default_cfg = float(defaults.get("cfg_scale", 1.0))
  table = defaults.get("block_level_db_by_cfg")
  if cfg is None or float(cfg) == default_cfg:
    defaults["block_level_db"] = level_db
    if table:
      table[f"{default_cfg:g}"] = level_db
  else:
    if defaults.get("block_level_db") is None:
      raise ValueError("a profile at a non-default CFG needs the default "
                       "CFG's block_level_db first")
    table = table or {f"{default_cfg:g}": defaults["block_level_db"]}
    table[f"{float(cfg):g}"] = level_db
    defaults["block_level_db_by_cfg"] = table
  meta = doc.setdefault("meta", {})
  for k, v in note.items():
    meta[k] = f"{meta[k]}; then {v}" if k in meta else v
  tmp = mj + ".tmp"
  with open(tmp, "w") as fh:
    json.dump(doc, fh, indent=1, sort_keys=True)   # as package.write
  os.replace(tmp, mj)


if __name__ == "__main__":
  sys.exit(main())
