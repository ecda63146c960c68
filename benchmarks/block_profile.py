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
  p.add_argument("--offset", type=float, default=5.0,
                 help="seconds into each piece")
  p.add_argument("--blocks", type=int, default=8,
                 help="free-running blocks per piece (the first is dropped)")
  p.add_argument("--forced-blocks", type=int, default=2)
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--sampler", default=None, choices=("euler", "pingpong"))
  p.add_argument("--cfg", type=float, default=None)
  p.add_argument("--json", default=None)
  args = p.parse_args(argv)
  if args.blocks < 2 or args.forced_blocks < 1 or args.clips < 1:
    p.error("need --blocks >= 2, --forced-blocks >= 1, --clips >= 1")

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
  files = list_audio_files(args.heldout)
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
  if args.json:
    with open(args.json, "w") as fh:
      json.dump(out, fh, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
