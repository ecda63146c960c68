"""Reads a Lightning-style .ckpt with our reader inside the refenv (torch).

  .ci/refenv/bin/python tests/reference/read_ckpt.py WORKDIR

Writes WORKDIR/m.ckpt ({"state_dict": ..., "epoch": 3}, one bfloat16
tensor), reads it back with lmdm_jax.convert.state_dict.read_state_dict
(numpy-only module, importable without jax) and saves both to
WORKDIR/outputs.npz ("want/<name>", "got/<name>").
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
from lmdm_jax.convert.state_dict import read_state_dict  # noqa: E402


def main(work):
  g = torch.Generator().manual_seed(0)
  sd = {"model.model.a.weight": torch.randn(3, 4, generator=g),
        "model.model.b.bias": torch.randn(5, generator=g).bfloat16()}
  torch.save({"state_dict": sd, "epoch": 3}, f"{work}/m.ckpt")
  got = read_state_dict(f"{work}/m.ckpt")
  out = {f"want/{k}": v.float().numpy() for k, v in sd.items()}
  out.update({f"got/{k}": v for k, v in got.items()})
  np.savez(f"{work}/outputs.npz", **out)


if __name__ == "__main__":
  main(sys.argv[1])
