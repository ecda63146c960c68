"""Real-time factor of SAO-Small-shape BC streaming, DiT only and with the
Oobleck decode, at K = 2 and 8 steps (random weights: cost does not depend
on them). Writes JSON.

  python benchmarks/rtf_sao_small.py --json benchmarks/results/rtf_sao_small_cpu.json

Per block (o = 48 frames = 2.23 s of 44.1 kHz audio):
  dit_s     `Stream.block` (conditioning, K network calls, slide), batch 1,
            no CFG (ARC-Forcing's setting) and, for K = 8, with CFG;
  decode_s  the live player's decode: o + 1 frames (one frame of overlap
            for the crossfade) through SAO's Oobleck decoder.
RTF = block audio seconds / seconds of compute (> 1: faster than real time).
Medians of --repeats timed calls after one warm-up call.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.bench.stream import device_info
from lmdm_jax.bench.study import matmul_peak
from lmdm_jax.codecs import get_codec
from lmdm_jax.codecs.oobleck_model import OobleckConfig
from lmdm_jax.configs import dit_config, geometry, load_config
from lmdm_jax.convert.oobleck import param_shapes
from lmdm_jax.model.init import init_params
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import StreamSpec, make_controls


def median_s(fn, repeats):
  fn()
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t0)
  return statistics.median(ts)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--config", default="configs/sao_small.py")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--json", required=True)
  args = ap.parse_args()
  cfg = load_config(args.config)
  dit = dit_config(cfg)
  g = geometry(cfg, "bc")
  params = jax.tree.map(jnp.asarray, init_params(dit, jax.random.PRNGKey(0),
                                                 cfg.cond_tokens))
  audio_s = g.block / cfg.frame_rate
  out = {"device": device_info(), "jax": jax.__version__,
         "config": args.config, "block_audio_s": audio_s,
         "matmul_peak_flops": matmul_peak(), "points": {}}

  ocfg = OobleckConfig()
  rng = np.random.default_rng(0)
  oparams = jax.tree.map(
      lambda a: (0.01 * rng.standard_normal(a.shape)).astype(np.float32),
      param_shapes(ocfg))
  codec = get_codec("oobleck", config=ocfg, params=oparams)
  z = rng.standard_normal((g.block + 1, ocfg.latent_dim)).astype(np.float32)
  decode_s = median_s(lambda: codec.decode(z), args.repeats)
  out["decode_s"] = decode_s
  print(f"[rtf] decode {g.block + 1} frames: {decode_s:.2f} s", flush=True)

  ctx = jax.random.normal(jax.random.PRNGKey(1),
                          (1, g.context, dit.io_channels))
  for steps, cfg_branch in ((2, False), (8, False), (8, True)):
    spec = StreamSpec(dit, g, batch=1, cond_tokens=cfg.cond_tokens,
                      steps=steps, cfg=cfg_branch)
    stream = Stream(spec)
    controls = make_controls(spec, cfg_scale=3.0 if cfg_branch else 1.0)
    holder = {"s": stream.prime(params, ctx, controls)}

    def block():
      holder["s"], y = stream.block(params, holder["s"], controls)
      jax.block_until_ready(y)

    dit_s = median_s(block, args.repeats)
    name = f"bc_k{steps}" + ("_cfg" if cfg_branch else "")
    out["points"][name] = {
        "steps": steps, "cfg": cfg_branch, "dit_s": dit_s,
        "dit_rtf": audio_s / dit_s,
        "with_decode_s": dit_s + decode_s,
        "with_decode_rtf": audio_s / (dit_s + decode_s)}
    print(f"[rtf] {name}: {out['points'][name]}", flush=True)
  with open(args.json, "w") as f:
    json.dump(out, f, indent=2)


if __name__ == "__main__":
  main()
