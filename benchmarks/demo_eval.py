"""Evaluates a model package the way docs/demo-model.md reports it.

  python3 benchmarks/demo_eval.py --heldout DEMO/audio/heldout \
      --out benchmarks/results/demo_eval [--model DIR] [--clips 16]

Writes into --out:
  results.json      FD / KL against held-out audio at each step count,
                    drift windows of long streams, prompt adherence (musicnn
                    MTT tag means per prompt), and audio checks (RMS,
                    spectral flatness) of every generated set
  drift.png         FD and KL per window over the long streams
  codec_round_trip  FD / KL of the reference clips through the model's own
                    codec (encode -> decode): what the codec alone costs
  gen_s{K}/, ref/, codec/, drift/, prompt_*/   the audio it measured

Generation prompts for FD/KL are the held-out pieces' own captions, so the
comparison is prompt-matched; the reference clips are crops of the held-out
audio of the same length as the generated clips.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

PROMPTS = {
    "piano": "moderate Bach chorale for solo piano",
    "strings": "slow Bach chorale for string ensemble",
    "organ": "slow Bach chorale for church organ",
    "choir": "slow Bach chorale for choir",
    "flute": "fast folk tune for flute",
    "orchestra": "orchestral soundtrack, recorded orchestra",
}


def audio_checks(files, block_samples=None):
  """Mono-mix RMS (dBFS) and median spectral flatness (0 = tonal, 1 = white
  noise) per file (`eval.listen`), averaged; with `block_samples` also the
  seam dip at that period (`listen.seam_profile`: level in the 46 ms after
  each block start below the block's median level; negative = a bump),
  mean over files and its standard error. On audio with no blocks (the
  reference crops) the same figure is the measure's noise floor."""
  import soundfile as sf
  from lmdm_jax.eval import listen
  rms, flat, seam = [], [], []
  for f in files:
    x = sf.read(f, dtype="float32", always_2d=True)
    x, sr = x[0].T, x[1]
    rms.append(listen.levels(x)["mono_dbfs"])
    flat.append(listen.spectral_flatness(x))
    if block_samples and x.shape[1] >= 2 * block_samples:
      seam.append(listen.seam_profile(x, sr, block_samples)["seam_dip_db"])
  out = {"files": len(files), "rms_dbfs_mean": float(np.mean(rms)),
         "rms_dbfs_min": float(np.min(rms)),
         "spectral_flatness_median": float(np.median(flat)),
         "spectral_flatness_max": float(np.max(flat))}
  if seam:
    out["seam_dip_db_mean"] = float(np.mean(seam))
    out["seam_dip_db_stderr"] = float(np.std(seam) / np.sqrt(len(seam)))
  return out


def wavs(d):
  return sorted(os.path.join(d, f) for f in os.listdir(d) if
                f.endswith(".wav"))


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--model", default=None)
  p.add_argument("--heldout", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--clips", type=int, default=16)
  p.add_argument("--clip-seconds", type=float, default=12.0)
  p.add_argument("--steps", default="8,50")
  p.add_argument("--drift-streams", type=int, default=3)
  p.add_argument("--drift-seconds", type=float, default=120.0)
  p.add_argument("--drift-window", type=float, default=15.0)
  p.add_argument("--drift-steps", type=int, default=8)
  p.add_argument("--prompt-clips", type=int, default=4)
  p.add_argument("--cfg", type=float, default=None)
  p.add_argument("--sampler", default=None, choices=("euler", "pingpong"),
                 help="default: the model's")
  args = p.parse_args(argv)

  import soundfile as sf
  from lmdm_jax.eval.run import evaluate_dirs, tag_summary
  from lmdm_jax.live.generate import generate
  from lmdm_jax.live.player import write_wav

  os.makedirs(args.out, exist_ok=True)
  log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
  t0 = time.time()
  results = {"model": args.model or "shipped demo", "clips": args.clips,
             "clip_seconds": args.clip_seconds}

  # Reference crops and their captions (prompt-matched generation).
  ref_files = sorted(
      os.path.join(root, f) for root, _, fs in os.walk(args.heldout)
      for f in fs if f.endswith((".flac", ".wav", ".ogg")))
  if not ref_files:
    raise SystemExit(f"no audio under {args.heldout}")
  ref_dir = os.path.join(args.out, "ref")
  os.makedirs(ref_dir, exist_ok=True)
  prompts = []
  for i in range(args.clips):
    src = ref_files[i % len(ref_files)]
    cap_path = os.path.splitext(src)[0] + ".txt"
    cap = open(cap_path).read().strip() if os.path.exists(cap_path) else ""
    prompts.append(cap)
    info = sf.info(src)
    rounds = i // len(ref_files)
    start = min(info.duration - args.clip_seconds, 5.0 + rounds *
                args.clip_seconds)
    start = max(start, 0.0)
    x, sr = sf.read(src, dtype="float32", always_2d=True,
                    start=int(start * info.samplerate),
                    frames=int(args.clip_seconds * info.samplerate))
    write_wav(os.path.join(ref_dir, f"clip{i:03d}.wav"), x.T, sr)
  # The codec's own row: the reference clips encoded and decoded by the
  # model's codec (the ceiling a model on this codec can reach).
  from lmdm_jax import pretrained
  pkg = pretrained.load(args.model or "demo")
  codec = pkg.make_codec()
  block = pkg.geometry.block * codec.hop
  results["reference"] = {"files": len(ref_files), "dir": args.heldout,
                          "checks": audio_checks(wavs(ref_dir), block)}
  cdir = os.path.join(args.out, "codec")
  os.makedirs(cdir, exist_ok=True)
  for f in wavs(ref_dir):
    x, sr = sf.read(f, dtype="float32", always_2d=True)
    y = np.asarray(codec.decode(codec.encode(x.T)))
    write_wav(os.path.join(cdir, os.path.basename(f)), y, sr)
  r = evaluate_dirs(cdir, ref_dir)
  results["codec_round_trip"] = {
      "fd": r["fd"], "kl": r["kl"], "kl_paired": r["kl_paired"],
      "checks": audio_checks(wavs(cdir), block)}
  log(f"[eval] codec round trip: FD {r['fd']:.3f} KL {r['kl']:.4f}")

  results["fd_kl"] = {}
  figures = {}
  for k in [int(s) for s in args.steps.split(",")]:
    d = os.path.join(args.out, f"gen_s{k}")
    os.makedirs(d, exist_ok=True)
    lat = []
    for i, prompt in enumerate(prompts):
      f = generate(prompt, args.clip_seconds, os.path.join(d,
                   f"clip{i:03d}.wav"), checkpoint=args.model, steps=k,
                   cfg_scale=args.cfg, sampler=args.sampler, seed=i,
                   progress=False,
                   log=lambda s: None)
      lat.append(f["latency_s"]["model"]["median"])
      figures = f
    r = evaluate_dirs(d, ref_dir)
    results["fd_kl"][f"steps_{k}"] = {
        "fd": r["fd"], "kl": r["kl"], "kl_paired": r["kl_paired"],
        "model_latency_s_median": float(np.median(lat)),
        "block_s": figures["block_s"], "cfg_scale": figures["cfg_scale"],
        "sampler": figures.get("sampler", args.sampler),
        "generated_top": r["generated"]["top"][:5],
        "reference_top": r["reference"]["top"][:5],
        "checks": audio_checks(wavs(d), block)}
    seam = results["fd_kl"][f"steps_{k}"]["checks"].get("seam_dip_db_mean",
                                                         float("nan"))
    log(f"[eval] steps {k}: FD {r['fd']:.3f} KL {r['kl']:.4f}, seam dip "
        f"{seam:+.2f} dB")

  # Drift over long streams.
  ddir = os.path.join(args.out, "drift")
  os.makedirs(ddir, exist_ok=True)
  for i in range(args.drift_streams):
    generate(prompts[i % len(prompts)], args.drift_seconds,
             os.path.join(ddir, f"stream{i}.wav"), checkpoint=args.model,
             steps=args.drift_steps, cfg_scale=args.cfg, seed=100 + i,
             progress=False, log=lambda s: None)
  if args.drift_streams:
    r = evaluate_dirs(ddir, ref_dir, window_seconds=args.drift_window)
    results["drift"] = {"streams": args.drift_streams,
                        "seconds": args.drift_seconds,
                        "steps": args.drift_steps,
                        "prompts": prompts[:args.drift_streams],
                        "windows": r["drift"]["windows"],
                        "checks": audio_checks(wavs(ddir), block)}
    log(f"[eval] drift: {len(r['drift']['windows'])} windows")
  try:
    if not args.drift_streams:
      raise ImportError("no drift streams")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    w = r["drift"]["windows"]
    mid = [(x["start_s"] + x["end_s"]) / 2 for x in w]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(mid, [x["fd"] for x in w], "o-")
    ax[0].set(xlabel="stream time (s)", ylabel="FD vs held-out",
              title="drift: Frechet distance")
    ax[1].plot(mid, [x["kl"] for x in w], "o-", color="C1")
    ax[1].set(xlabel="stream time (s)", ylabel="KL(ref || gen)",
              title="drift: tag KL")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "drift.png"), dpi=110)
  except ImportError as e:
    log(f"[eval] no drift.png ({e})")

  # Prompt adherence: musicnn MTT tags of generations per prompt.
  results["prompts"] = {}
  for name, prompt in (PROMPTS.items() if args.prompt_clips else ()):
    d = os.path.join(args.out, f"prompt_{name}")
    os.makedirs(d, exist_ok=True)
    for i in range(args.prompt_clips):
      generate(prompt, args.clip_seconds, os.path.join(d, f"clip{i}.wav"),
               checkpoint=args.model, steps=8, cfg_scale=args.cfg,
               seed=200 + i, progress=False, log=lambda s: None)
    s = tag_summary(d)
    results["prompts"][name] = {"prompt": prompt, "focus": s["focus"],
                                "top": s["top"][:5],
                                "checks": audio_checks(wavs(d))}
    log(f"[eval] prompt {name}: {s['focus']}")
  results["wall_s"] = time.time() - t0
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(json.dumps({k: v for k, v in results.items() if k != "drift"},
                   indent=2)[:6000])
  return 0


if __name__ == "__main__":
  sys.exit(main())
