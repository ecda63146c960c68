"""Listens to a model's `lmdm generate` output by numbers at several CFG
scales and seeds: level, mono mix vs stereo, side vs mid, L/R correlation,
clipping, spectral flatness and block seams (lmdm_jax/eval/listen.py).

  PYTHONPATH=. python3 benchmarks/demo_listen.py [--model demo|DIR] \
      --cfg 1,3,7,15,25 --seeds 0,1 --seconds 30 \
      --json benchmarks/results/demo_listen.json

Each run is the main job exactly as a user runs it (`lmdm generate`, the
package's steps and sampler, the output stage), so the WAV measured is the
WAV a user gets. Seams are measured at the model's block period from the
file's start (blocks are written back to back; the stream decoder's own
latency is flushed at the end); `max_dip_db` also catches a seam that sits
elsewhere in the period.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

import numpy as np


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--model", default="demo")
  p.add_argument("--prompt", default="slow Bach chorale for string ensemble")
  p.add_argument("--cfg", default="1,3,7,15,25")
  p.add_argument("--seeds", default="0,1")
  p.add_argument("--seconds", type=float, default=30.0)
  p.add_argument("--json", required=True)
  a = p.parse_args(argv)
  import jax
  import soundfile as sf
  from lmdm_jax import pretrained
  from lmdm_jax.cli import main as lmdm
  from lmdm_jax.eval import listen
  pkg = pretrained.load(a.model)
  block = pkg.geometry.block * pkg.make_codec().hop
  runs = []
  with tempfile.TemporaryDirectory() as tmp:
    for cfg in [float(c) for c in a.cfg.split(",")]:
      for seed in [int(s) for s in a.seeds.split(",")]:
        out = os.path.join(tmp, f"cfg{cfg}_seed{seed}.wav")
        fig = out + ".json"
        rc = lmdm(["generate", "--checkpoint", a.model, "--prompt", a.prompt,
                   "--seconds", str(a.seconds), "--cfg", str(cfg),
                   "--seed", str(seed), "--out", out, "--json", fig,
                   "--no-progress"])
        if rc != 0:
          raise SystemExit(f"lmdm generate exited {rc} at cfg {cfg}")
        x, sr = sf.read(out, dtype="float32", always_2d=True)
        with open(fig) as f:
          g = json.load(f)
        r = {"cfg": cfg, "seed": seed,
             "real_time_factor": g["real_time_factor"],
             "real_time_factor_model_only": g["real_time_factor_model_only"]}
        r.update(listen.report(x.T, sr, block_samples=block))
        runs.append(r)
        print(f"cfg {cfg:>4} seed {seed}: rms {r['rms_dbfs']:.1f} dBFS, "
              f"mono loss {r['mono_loss_db']:.2f} dB, corr "
              f"{r.get('lr_correlation', 1):.2f}, seam dip "
              f"{r['seam_dip_db']:.2f} dB (max {r['max_dip_db']:.2f}), "
              f"flatness {r['spectral_flatness_median']:.1e}, clipped "
              f"{r['clipped_fraction']:.1e}, RTF "
              f"{r['real_time_factor']:.1f}x", flush=True)
  res = {"model": a.model, "codec": pkg.codec["name"],
         "prompt": a.prompt, "seconds": a.seconds, "block_samples": block,
         "jax": jax.__version__, "host_cpu": platform.processor()
         or platform.machine(), "host_cores": os.cpu_count(), "runs": runs,
         "mean": {k: float(np.mean([r[k] for r in runs]))
                  for k in ("mono_loss_db", "seam_dip_db", "max_dip_db",
                            "rms_dbfs", "real_time_factor")}}
  os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
  with open(a.json, "w") as f:
    json.dump(res, f, indent=1)
  print(json.dumps(res["mean"]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
