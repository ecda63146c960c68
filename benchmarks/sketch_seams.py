"""Block-seam level of sketch-controlled generations, over clips and seeds.

For each package, each --sketch file and each seed: `lmdm generate` (the
Python entry, `lmdm_jax.live.generate.generate`) with the file as sketch,
its caption (the .txt beside it) as prompt, --seconds of music; then the
seam profile of the written WAV (`lmdm_jax.eval.listen.seam_profile`,
blocks from sample 0): the seam "dip" in dB over the whole band and
band-passed to 300-1250 Hz (6th-order Butterworth, zero phase: the range
where a block-start burst was first heard). A negative dip is a burst.

One seed on one clip is not a measurement: on the folk reel below the
same model gives -4.0 dB with one seed and +1.9 dB with the next. The
JSON keeps every run, and means with their standard errors per package
and per (package, clip).

  PYTHONPATH=. python3 benchmarks/sketch_seams.py \
      --model lmdm_jax/assets/sketch --model PKG_SUB \
      --sketch JAM/audio/heldout/folk/ryansMammoth_PaddyThePiperReel__0.flac \
      --sketch ... --seeds 0,1,2,3 --seconds 20 --workdir /tmp/seams \
      --json benchmarks/results/sketch_seams.json
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np


def band_seam(audio, sr: int, block_samples: int, lo: float, hi: float):
  from scipy import signal
  from lmdm_jax.eval import listen
  sos = signal.butter(6, [lo, hi], "bandpass", fs=sr, output="sos")
  x = signal.sosfiltfilt(sos, np.asarray(audio, np.float64), axis=-1)
  return float(listen.seam_profile(x, sr, block_samples)["seam_dip_db"])


def _mean_se(v):
  v = np.asarray(v, float)
  se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
  return {"mean": float(v.mean()), "stderr": se, "n": int(len(v))}


def run(models, sketches, seeds, seconds: float, workdir: str,
        band=(300.0, 1250.0), sketch_controls=None, log=print) -> dict:
  """sketch_controls: the controls to take from each file (None: all the
  model has; `lmdm generate --sketch-controls`)."""
  import soundfile as sf
  from lmdm_jax.eval import listen
  from lmdm_jax.live.generate import generate
  for f in sketches:
    if not os.path.isfile(f):
      raise FileNotFoundError(f"--sketch {f}: no such file")
  os.makedirs(workdir, exist_ok=True)
  runs = []
  for m in models:
    for f in sketches:
      cap = os.path.splitext(f)[0] + ".txt"
      prompt = open(cap).read().strip() if os.path.exists(cap) else "music"
      for seed in seeds:
        out = os.path.join(workdir, f"{len(runs):03d}.wav")
        fig = generate(prompt, seconds, out, checkpoint=m, seed=seed,
                       sketch=f, sketch_controls=sketch_controls,
                       progress=False, log=lambda s: None)
        a, sr = sf.read(out, dtype="float32", always_2d=True)
        block_samples = int(round(fig["block_s"] * sr))
        row = {"model": m, "sketch": os.path.basename(f), "seed": seed,
               "prompt": prompt,
               "seam_dip_db": float(listen.seam_profile(
                   a.T, sr, block_samples)["seam_dip_db"]),
               "band_seam_dip_db": band_seam(a.T, sr, block_samples, *band),
               "real_time_factor": fig["real_time_factor"]}
        log(f"[seams] {os.path.basename(m)} {row['sketch']} seed {seed}: "
            f"{row['seam_dip_db']:+.2f} dB ({band[0]:.0f}-{band[1]:.0f} Hz "
            f"{row['band_seam_dip_db']:+.2f})")
        runs.append(row)
  summary = {}
  for m in models:
    rows = [r for r in runs if r["model"] == m]
    summary[m] = {"all": {k: _mean_se([r[k] for r in rows])
                          for k in ("seam_dip_db", "band_seam_dip_db")}}
    for f in sorted({r["sketch"] for r in rows}):
      summary[m][f] = {k: _mean_se([r[k] for r in rows if r["sketch"] == f])
                       for k in ("seam_dip_db", "band_seam_dip_db")}
  return {"seconds": seconds, "seeds": list(seeds), "band_hz": list(band),
          "sketch_controls": sketch_controls,
          "summary": summary, "runs": runs}


def main():
  from lmdm_jax.cliutil import int_list
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model", action="append", required=True)
  ap.add_argument("--sketch", action="append", required=True,
                  help="audio file with an optional caption .txt beside it")
  ap.add_argument("--seeds", type=int_list, default=[0, 1, 2, 3],
                  help="comma-separated seeds")
  ap.add_argument("--sketch-controls", default=None,
                  help="comma-separated controls to take from the files "
                       "(default: all the model has)")
  ap.add_argument("--seconds", type=float, default=20.0)
  ap.add_argument("--workdir", required=True, help="where the WAVs go")
  ap.add_argument("--json", required=True)
  a = ap.parse_args()
  names = a.sketch_controls.split(",") if a.sketch_controls else None
  r = run(a.model, a.sketch, a.seeds, a.seconds, a.workdir,
          sketch_controls=names)
  with open(a.json, "w") as f:
    json.dump(r, f, indent=1)
  print(json.dumps(r["summary"], indent=1))


if __name__ == "__main__":
  main()
