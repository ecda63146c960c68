"""The control for a post-trained package: the base model moved by random
noise of the same size, tensor by tensor (docs/arc-forcing.md, run 2).

  python3 benchmarks/perturb_params.py --base lmdm_jax/assets/demo \
      --moved WA/pkg --out PERTURBED [--seed 0]

For every parameter tensor, adds Gaussian noise scaled to the L2 norm of
(moved - base) for that tensor, and writes a package with --moved's
model.json. If the perturbed model scores like the base while the moved one
does not, the moved model's loss comes from the direction of its change,
not its size.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--base", required=True)
  p.add_argument("--moved", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  base = np.load(os.path.join(args.base, "params.npz"))
  moved = np.load(os.path.join(args.moved, "params.npz"))
  if set(base.files) != set(moved.files):
    raise SystemExit(f"{args.base} and {args.moved} hold different "
                     f"parameters")
  rng = np.random.default_rng(args.seed)
  out, num, den = {}, 0.0, 0.0
  for k in base.files:
    b = base[k].astype(np.float64)
    if moved[k].shape != b.shape:
      raise SystemExit(f"{k}: shape {moved[k].shape} vs {b.shape}")
    d = np.linalg.norm(moved[k].astype(np.float64) - b)
    noise = rng.standard_normal(b.shape)
    noise *= d / (np.linalg.norm(noise) + 1e-30)
    out[k] = (b + noise).astype(base[k].dtype)
    num, den = num + d * d, den + float((b * b).sum())
  os.makedirs(args.out, exist_ok=True)
  shutil.copy(os.path.join(args.moved, "model.json"), args.out)
  np.savez(os.path.join(args.out, "params.npz"), **out)
  print(f"relative L2 change {np.sqrt(num / den):.5f}; wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
