"""Oobleck VAE speed at SAO shapes with random weights (cost does not depend
on them): 5 s of audio; the first call includes compilation, the second is
the timed one.

  PYTHONPATH=. python3 benchmarks/oobleck_rtf.py \
      > benchmarks/results/oobleck_sao_shapes_cpu.json
"""
import json
import time

import jax
import numpy as np

from lmdm_jax.codecs import get_codec
from lmdm_jax.codecs.oobleck_model import OobleckConfig
from lmdm_jax.convert.oobleck import param_shapes


def timed(fn, *args):
  t0 = time.perf_counter()
  fn(*args)
  return time.perf_counter() - t0


def main():
  cfg = OobleckConfig()                       # SAO's VAE shapes
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda a: (0.01 * rng.standard_normal(a.shape)).astype(np.float32),
      param_shapes(cfg))
  codec = get_codec("oobleck", config=cfg, params=params)
  frames = 108
  seconds = frames * cfg.hop / 44100
  z = rng.standard_normal((frames, cfg.latent_dim)).astype(np.float32)
  x = rng.uniform(-0.1, 0.1, (2, frames * cfg.hop)).astype(np.float32)
  dec = [timed(codec.decode, z) for _ in range(2)]
  enc = [timed(codec.encode, x) for _ in range(2)]
  print(json.dumps({
      "params": int(sum(a.size for a in jax.tree.leaves(params))),
      "audio_s": seconds, "decode_first_s": dec[0], "decode_s": dec[1],
      "decode_rtf": seconds / dec[1], "encode_first_s": enc[0],
      "encode_s": enc[1], "encode_rtf": seconds / enc[1],
      "radius": cfg.decoder_radius(),
      "device": f"2-core AMD EPYC VM, jax {jax.__version__}, CPU"},
      indent=2))


if __name__ == "__main__":
  main()
