"""Which inference-time settings move the demo model's FD (docs/demo-model.md).

Generates `--clips` prompt-matched clips per variant (the captions and
reference crops of `demo_eval.py`: crop i of held-out file i mod n, from
5 s in; seed i) and scores each variant against the crops: musicnn FD/KL,
the seam dip (`eval.listen.seam_profile`, mean ± stderr over clips) and the
mean spectral contrast of the generated latents (std over the value
channels, as `block_profile.py`). Variants (comma-separated `--variants`):

  default          the package's sampler at --steps / --cfg, decoded whole
                   and passed block by block through the package's output
                   stage (as `lmdm generate` plays it)
  raw_decode       the same latents without the output stage
  empty_prompt     the same seeds with the empty prompt (unconditional)
  logsnr_max=X     the log-SNR schedule's top end X instead of 2 (the last
                   step's denoiser input at t = sigmoid(-X') for the last
                   level X' below X)
  contrast=A       value channels stretched about their frame mean by A

  PYTHONPATH=. python3 benchmarks/demo_levers.py --heldout DEMO/audio/heldout \\
      --variants default,raw_decode,empty_prompt,logsnr_max=4,contrast=1.1 \\
      --json benchmarks/results/demo_levers.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np


def parse_variants(text: str):
  """'a,b=1.5' -> [(name, value or None)], validated."""
  out = []
  for item in [v.strip() for v in text.split(",") if v.strip()]:
    name, _, value = item.partition("=")
    if name in ("default", "raw_decode", "empty_prompt") and not value:
      out.append((name, None))
    elif name in ("logsnr_max", "contrast") and value:
      try:
        out.append((name, float(value)))
      except ValueError:
        raise ValueError(f"variant {item!r}: {value!r} is not a number") \
            from None
    else:
      raise ValueError(f"unknown variant {item!r}; known: default, "
                       f"raw_decode, empty_prompt, logsnr_max=X, contrast=A")
  if not out:
    raise ValueError("no variants given")
  return out


@contextlib.contextmanager
def logsnr_max(value):
  """The named 'logsnr' schedule with its top end at `value` (or as is).

  A StreamSpec names its schedule and the compiled streams are cached per
  spec (`live.session.stream_for`), so the cache is cleared on the way in
  and out: otherwise a spec equal to an earlier one reuses programs traced
  with the earlier levels."""
  from lmdm_jax.diffusion import flow
  from lmdm_jax.live.session import stream_for
  old = flow.SCHEDULES["logsnr"]
  if value is not None:
    flow.SCHEDULES["logsnr"] = flow.LogSNR(old.logsnr_min, value)
    stream_for.cache_clear()
  try:
    yield
  finally:
    if value is not None:
      flow.SCHEDULES["logsnr"] = old
      stream_for.cache_clear()


def stretch(latents, codec, alpha: float):
  """Value channels about their frame mean x alpha: [F, C] -> [F, C]."""
  z = np.array(latents, np.float32)
  vc = slice(0, codec.slices[1].stop)
  mu = z[:, vc].mean(-1, keepdims=True)
  z[:, vc] = mu + alpha * (z[:, vc] - mu)
  return z


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--model", default="demo")
  p.add_argument("--heldout", required=True)
  p.add_argument("--out", default=None, help="keep the WAVs here")
  p.add_argument("--clips", type=int, default=32)
  p.add_argument("--seconds", type=float, default=12.0)
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--cfg", type=float, default=None)
  p.add_argument("--sampler", default=None, choices=("euler", "pingpong"))
  p.add_argument("--variants", default="default,raw_decode,empty_prompt")
  p.add_argument("--json", default=None)
  args = p.parse_args(argv)
  variants = parse_variants(args.variants)

  import tempfile
  import soundfile as sf
  from lmdm_jax import pretrained
  from lmdm_jax.bench.codec import list_audio_files
  from lmdm_jax.eval import listen
  from lmdm_jax.eval.run import evaluate_dirs
  from lmdm_jax.live import output_stage
  from lmdm_jax.live.player import write_wav
  from lmdm_jax.live.session import LiveSession
  from lmdm_jax.streaming.state import StreamSpec

  log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
  t0 = time.time()
  pkg = pretrained.load(args.model)
  codec = pkg.make_codec()
  g, d = pkg.geometry, pkg.defaults
  steps = int(args.steps or d.get("steps", 8))
  cfg = float(args.cfg if args.cfg is not None else d.get("cfg_scale", 1.0))
  sampler = args.sampler or d.get("sampler", "pingpong")
  if any(n == "contrast" for n, _ in variants) and not hasattr(codec,
                                                               "slices"):
    raise SystemExit("contrast=A needs the semitone codec")
  files = list_audio_files(args.heldout)
  if not files:
    raise SystemExit(f"no audio under {args.heldout}")
  work = args.out or tempfile.mkdtemp(prefix="demo_levers_")
  ref = os.path.join(work, "ref")
  os.makedirs(ref, exist_ok=True)
  prompts = []
  for i in range(args.clips):         # demo_eval.py's crops and captions
    src = files[i % len(files)]
    cap = os.path.splitext(src)[0] + ".txt"
    prompts.append(open(cap).read().strip() if os.path.exists(cap) else "")
    info = sf.info(src)
    start = max(0.0, min(info.duration - args.seconds,
                         5.0 + (i // len(files)) * args.seconds))
    x, sr = sf.read(src, dtype="float32", always_2d=True,
                    start=int(start * info.samplerate),
                    frames=int(args.seconds * info.samplerate))
    write_wav(os.path.join(ref, f"clip{i:03d}.wav"), x.T, sr)
  blocks = int(np.ceil(args.seconds * codec.frame_rate / g.block))
  n = int(args.seconds * codec.sample_rate)
  block_samples = g.block * codec.hop
  results = {"model": args.model, "steps": steps, "cfg_scale": cfg,
             "sampler": sampler, "clips": args.clips,
             "seconds": args.seconds, "variants": {}}
  for name, value in variants:
    label = name if value is None else f"{name}={value:g}"
    with logsnr_max(value if name == "logsnr_max" else None):
      spec = StreamSpec(pkg.dit, g, batch=1, cond_tokens=pkg.cond_tokens,
                        steps=steps, sampler=sampler, cfg=cfg != 1.0)
      levels = [round(float(v), 4) for v in spec.levels]
      session = LiveSession(pkg.params["dit"], spec,
                            pkg.text_encoder().encode_one,
                            global_cond=pkg.global_cond())
      session.set_cfg(cfg)
      out_dir = os.path.join(work, label.replace("=", "_"))
      os.makedirs(out_dir, exist_ok=True)
      seams, contrast = [], []
      for i, prompt in enumerate(prompts):
        session.set_seed(i)
        session.set_prompts({"" if name == "empty_prompt" else prompt: 1.0})
        session.prime(np.zeros((1, g.context, pkg.dit.io_channels),
                               np.float32))
        session.recorded = []
        z = np.concatenate([session.next_block()[0] for _ in range(blocks)])
        if name == "contrast":
          z = stretch(z, codec, value)
        if hasattr(codec, "slices"):
          contrast.append(float(z[:, :codec.slices[1].stop].std(-1).mean()))
        y = codec.decode(z)[:, :n]
        if name != "raw_decode":
          stage = output_stage.for_package(pkg, codec)
          y = np.concatenate([stage.process(y[:, k:k + block_samples])
                              for k in range(0, y.shape[1], block_samples)],
                             axis=1)
        seams.append(listen.seam_profile(y, codec.sample_rate,
                                         block_samples)["seam_dip_db"])
        write_wav(os.path.join(out_dir, f"clip{i:03d}.wav"), y,
                  codec.sample_rate)
    r = evaluate_dirs(out_dir, ref)
    row = {"fd": r["fd"], "kl": r["kl"], "levels": levels,
           "seam_dip_db_mean": float(np.mean(seams)),
           "seam_dip_db_stderr": float(np.std(seams) / np.sqrt(len(seams)))}
    if contrast:
      row["contrast_mean"] = float(np.mean(contrast))
    results["variants"][label] = row
    log(f"[demo_levers] {label}: FD {row['fd']:.2f} KL {row['kl']:.3f} "
        f"seam {row['seam_dip_db_mean']:+.2f} dB"
        + (f" contrast {row['contrast_mean']:.3f}" if contrast else ""))
  results["seconds_taken"] = round(time.time() - t0, 1)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
