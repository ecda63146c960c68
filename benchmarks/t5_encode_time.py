"""T5-base encode time for a batch of prompts (random weights; cost does not
depend on them). Writes JSON.

  PYTHONPATH=. python3 benchmarks/t5_encode_time.py --batch 8 --tokens 64 \
      --json benchmarks/results/t5_encode_cpu.json
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.bench.stream import device_info
from lmdm_jax.text.t5 import T5Config, T5Encoder


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--tokens", type=int, default=64)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--json", default=None)
  a = p.parse_args()
  # t5-base: 12 layers, d_model 768, 12 heads of 64, d_ff 3072, ReLU FF.
  cfg = T5Config()
  model = T5Encoder(cfg)
  ids = jnp.ones((a.batch, a.tokens), jnp.int32)
  mask = jnp.ones((a.batch, a.tokens), jnp.int32)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), ids, mask)
  f = jax.jit(model.apply)
  t0 = time.perf_counter()
  jax.block_until_ready(f(params, ids, mask))
  first = time.perf_counter() - t0
  times = []
  for _ in range(a.repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(f(params, ids, mask))
    times.append(time.perf_counter() - t0)
  n = sum(np.prod(x.shape) for x in jax.tree.leaves(params))
  out = {"device": device_info(), "jax": jax.__version__, "params": int(n),
         "config": cfg.__dict__, "batch": a.batch, "tokens": a.tokens,
         "compile_s": first - float(np.median(times)),
         "encode_ms_p50": 1e3 * float(np.median(times)),
         "encode_ms_per_prompt": 1e3 * float(np.median(times)) / a.batch}
  print(json.dumps(out, indent=2))
  if a.json:
    with open(a.json, "w") as fh:
      json.dump(out, fh, indent=2)


if __name__ == "__main__":
  main()
