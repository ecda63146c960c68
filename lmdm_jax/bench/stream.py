"""Streaming cost per block: XLA-counted FLOPs, compile time, latency, RTF.

For each mode the network calls of one block are compiled separately to
count FLOPs (XLA's cost analysis counts a loop body once, so the scanned
block function cannot be used for counting):

  flops_per_block = cache_update + first_step + (K - 1) * later_step

and the live block function (`Stream.block`: conditioning, K steps, slide)
is timed over `blocks` calls after one warm-up call. Weights are random:
cost does not depend on them.
"""
from __future__ import annotations

import json
import platform
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.model.init import init_params
from lmdm_jax.streaming import steps as st
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import StreamSpec, make_controls, state_bytes


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get("flops", 0.0)) if cost else 0.0


def cpu_name() -> str:
  """The host CPU model (/proc/cpuinfo; platform.processor() elsewhere)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def device_info() -> dict:
  """Accelerator kind and count plus the host CPU and its core count."""
  import os
  d = jax.devices()[0]
  return {"platform": d.platform, "kind": d.device_kind,
          "count": jax.device_count(), "host_cpu": cpu_name(),
          "host_cores": os.cpu_count()}


def call_flops(params, spec: StreamSpec, state, controls) -> dict:
  """Model FLOPs of each network call of a block, from compiled executables.

  Counted with query padding off (`min_query_rows=0`): padding rows are
  executed for speed on some backends but are not model work, so MFU and the
  mode comparisons use the algorithm's FLOPs.
  """
  spec = spec.replace(min_query_rows=0)
  x = jnp.zeros((spec.batch, spec.geometry.block, spec.model.io_channels))
  t = jnp.float32(0.5)

  def first(p, s, x, t):
    return st.first_step(p, spec, s, x, t)

  def later(p, s, x, t):
    return st.later_step(p, spec, s, x, t)

  def update(p, s, c):
    return st.cache_update(p, spec, s, c)

  out = {}
  for name, fn, args in (("cache_update", update, (params, state, controls)),
                         ("first_step", first, (params, state, x, t)),
                         ("later_step", later, (params, state, x, t))):
    out[name] = _flops(jax.jit(fn).lower(*args).compile())
  return out


def bench_mode(params, spec: StreamSpec, blocks: int, frame_rate: float,
               seed: int = 0) -> dict:
  g, m = spec.geometry, spec.model
  stream = Stream(spec)
  controls = make_controls(spec, cfg_scale=1.0, seed=seed)
  context = jax.random.normal(jax.random.PRNGKey(seed),
                              (spec.batch, g.context, m.io_channels))
  state = stream.prime(params, context, controls)
  flops = call_flops(params, spec, state, controls)
  per_block = (flops["cache_update"] + flops["first_step"]
               + (spec.steps - 1) * flops["later_step"])

  t0 = time.perf_counter()
  state, x = stream.block(params, state, controls)   # compile + warm-up
  jax.block_until_ready(x)
  first_call_s = time.perf_counter() - t0
  times = []
  for _ in range(blocks):
    t0 = time.perf_counter()
    state, x = stream.block(params, state, controls)
    jax.block_until_ready(x)
    times.append(time.perf_counter() - t0)
  ms = np.asarray(times) * 1e3
  audio_s = g.block / frame_rate
  p50 = float(np.median(ms))
  # Compile time: the first call minus a steady-state call.
  compile_s = max(first_call_s - p50 / 1e3, 0.0)
  return {
      "flops_per_block": per_block,
      "flops_per_call": flops,
      "flops_per_audio_second": per_block / audio_s,
      "compile_s": compile_s,
      "ms_per_block_p50": p50,
      "ms_per_block_p90": float(np.percentile(ms, 90)),
      "ms_per_block_all": [float(v) for v in ms],
      "real_time_factor": audio_s / (p50 / 1e3),
      "state_bytes": state_bytes(state),
      "geometry": {"context": g.context, "block": g.block,
                   "window_chunks": g.window_chunks},
  }


def run(config_path: str, cfg, modes: Sequence[str], steps: int,
        blocks: int, batch: int = 1, cfg_branch: bool = False,
        sampler: str = "pingpong", progress=print) -> dict:
  from lmdm_jax.configs import dit_config, geometry
  dit = dit_config(cfg)
  params = init_params(dit, jax.random.PRNGKey(0), cfg.cond_tokens)
  result = {"device": device_info(), "jax": jax.__version__,
            "config": config_path, "steps": steps, "blocks_timed": blocks,
            "batch": batch, "cfg": cfg_branch, "sampler": sampler,
            "modes": {}}
  for mode in modes:
    spec = StreamSpec(dit, geometry(cfg, mode), batch=batch,
                      cond_tokens=cfg.cond_tokens, steps=steps,
                      sampler=sampler, cfg=cfg_branch)
    progress(f"[bench] {mode}: compiling and timing {blocks} blocks ...")
    r = bench_mode(params, spec, blocks, cfg.frame_rate)
    progress(f"[bench] {mode}: {r['flops_per_block'] / 1e9:.1f} GFLOP/block"
             f", p50 {r['ms_per_block_p50']:.0f} ms, RTF "
             f"{r['real_time_factor']:.2f}")
    result["modes"][mode] = r
  if "outpaint" in result["modes"]:
    base = result["modes"]["outpaint"]
    result["ratios_vs_outpaint"] = {
        m: {"flops": base["flops_per_block"] / r["flops_per_block"],
            "time": base["ms_per_block_p50"] / r["ms_per_block_p50"]}
        for m, r in result["modes"].items()}
  return result


def markdown_table(result: dict) -> str:
  rows = ["| mode | GFLOP/block | ms/block p50 | p90 | RTF | compile s | "
          "state MB |", "|---|---|---|---|---|---|---|"]
  for mode, r in result["modes"].items():
    rows.append(
        f"| {mode} | {r['flops_per_block'] / 1e9:.1f} | "
        f"{r['ms_per_block_p50']:.0f} | {r['ms_per_block_p90']:.0f} | "
        f"{r['real_time_factor']:.2f} | {r['compile_s']:.1f} | "
        f"{r['state_bytes'] / 2**20:.1f} |")
  return "\n".join(rows)


def write_json(result: dict, path: str) -> None:
  with open(path, "w") as f:
    json.dump(result, f, indent=2)
