"""`lmdm bench study`: LMDM (outpaint, ed, bc) vs a discrete-AR live model.

For every point of a sweep (mode, steps K, context s, block o, batch,
dtype) it records XLA-counted FLOPs per block and per audio second (summed
over the block's separately compiled network calls, because XLA's cost
analysis counts a loop body once), time to first audio, per-block latency
p50/p90, real-time factor, compile time, XLA's memory estimate of the block
program and MFU: achieved FLOP/s over a dense-matmul peak measured on the
same device in the same run. Weights are random: cost does not depend on
them. Results: JSON, a Markdown table and PNG plots, each naming the device.

Complexity fits (least squares over the sweep, per mode), with e the cost of
encoding one context frame and d of one target frame for one step:

  outpaint      d K (s + o)        ed  e s + d K o
  bc            e o + d K o        discrete-AR  e N_enc + d_t F + d_v F V
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from typing import Dict, List

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.bench.stream import _flops, call_flops, device_info
from lmdm_jax.bench import discrete_ar as dar
from lmdm_jax.model.config import Geometry
from lmdm_jax.model.init import count_params, init_params
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import StreamSpec, make_controls

LMDM_MODES = ("outpaint", "ed", "bc")


def matmul_peak(dtype=jnp.float32, n: int = 2048, repeats: int = 10) -> float:
  """Dense [n,n] x [n,n] FLOP/s on the default device (best of repeats).

  Best of 10: on a shared 2-core VM single calls vary by +-30 %
  (benchmarks/results/bc_step_levers_cpu.json measured 124-171 GFLOP/s in
  consecutive processes), and the peak is the MFU denominator.
  """
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(f(a))
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best


def _time_blocks(fn, state, n):
  times = []
  for _ in range(n):
    t0 = time.perf_counter()
    state, out = fn(state)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - t0)
  return state, np.asarray(times)


def _memory_bytes(compiled) -> int:
  m = compiled.memory_analysis()
  if m is None:
    return 0
  return int(getattr(m, "temp_size_in_bytes", 0)
             + getattr(m, "argument_size_in_bytes", 0)
             + getattr(m, "output_size_in_bytes", 0))


def lmdm_point(params, dit, cond_tokens, frame_rate, mode, steps, context,
               block, batch, timed) -> dict:
  w = context // block if mode == "bc" else 4
  geom = Geometry(mode=mode, context=context, block=block,
                  window_chunks=max(w, 2))
  spec = StreamSpec(dit, geom, batch=batch, cond_tokens=cond_tokens,
                    steps=steps)
  stream = Stream(spec)
  controls = make_controls(spec)
  ctx = jnp.zeros((batch, context, dit.io_channels))
  state = stream.prime(params, ctx, controls)
  flops = call_flops(params, spec, state, controls)
  per_block = (flops["cache_update"] + flops["first_step"]
               + (steps - 1) * flops["later_step"])
  compiled = stream._block.lower(params, state, controls).compile()
  t0 = time.perf_counter()
  state, x = stream.block(params, state, controls)
  jax.block_until_ready(x)
  first = time.perf_counter() - t0
  # Time to first audio: prime + one block on a warm program.
  t0 = time.perf_counter()
  s2 = stream.prime(params, ctx, controls)
  s2, x = stream.block(params, s2, controls)
  jax.block_until_ready(x)
  ttfa = time.perf_counter() - t0
  state, times = _time_blocks(lambda s: stream.block(params, s, controls),
                              state, timed)
  p50 = float(np.median(times))
  return {
      "flops_per_block": per_block, "flops_per_call": flops,
      "audio_s_per_block": block / frame_rate, "time_to_first_audio_s": ttfa,
      "p50_s": p50, "p90_s": float(np.percentile(times, 90)),
      "compile_s": max(first - p50, 0.0), "memory_bytes":
      _memory_bytes(compiled), "terms": {"s": context, "o": block,
                                         "K": steps}}


def dar_point(config: dar.DiscreteARConfig, batch, timed) -> dict:
  c = config
  params = dar.init_params(c, jax.random.PRNGKey(0))
  ctx = jnp.zeros((batch, c.context_frames, c.context_levels), jnp.int32)
  style = jnp.zeros((batch, c.style_tokens), jnp.int32)
  model = dar.DiscreteAR(c)
  memory = jax.eval_shape(lambda: model.apply(
      {"params": params}, ctx, style, method=dar.DiscreteAR.encode))
  memory = jnp.zeros(memory.shape, memory.dtype)
  (tc, _), (dc, _) = dar._empty_caches(c, batch)
  enc = jax.jit(lambda p, x, s: model.apply({"params": p}, x, s,
                                            method=dar.DiscreteAR.encode))
  tmp = jax.jit(lambda p, prev, tc, m: model.apply(
      {"params": p}, prev, 3, (tc, tc), m,
      method=dar.DiscreteAR.temporal_step))
  dep = jax.jit(lambda p, h, tok, dc: model.apply(
      {"params": p}, h, tok, 3, (dc, dc), method=dar.DiscreteAR.depth_step))
  prev = jnp.zeros((batch, c.levels), jnp.int32)
  h = jnp.zeros((batch, c.width))
  tok = jnp.zeros((batch,), jnp.int32)
  f_enc = _flops(enc.lower(params, ctx, style).compile())
  f_tmp = _flops(tmp.lower(params, prev, tc, memory).compile())
  f_dep = _flops(dep.lower(params, h, tok, dc).compile())
  per_block = f_enc + c.chunk_frames * (f_tmp + c.levels * f_dep)
  gen = jax.jit(lambda p, x, s, k: dar.generate_chunk(p, c, x, s, k))
  compiled = gen.lower(params, ctx, style, jax.random.PRNGKey(0)).compile()
  t0 = time.perf_counter()
  jax.block_until_ready(gen(params, ctx, style, jax.random.PRNGKey(0)))
  first = time.perf_counter() - t0
  _, times = _time_blocks(
      lambda s: (s, gen(params, ctx, style, jax.random.PRNGKey(1))), None,
      timed)
  p50 = float(np.median(times))
  return {
      "flops_per_block": per_block,
      "flops_per_call": {"encode": f_enc, "temporal_step": f_tmp,
                         "depth_step": f_dep},
      "audio_s_per_block": c.chunk_frames / c.frame_rate,
      "time_to_first_audio_s": float(times[0]), "p50_s": p50,
      "p90_s": float(np.percentile(times, 90)),
      "compile_s": max(first - p50, 0.0),
      "memory_bytes": _memory_bytes(compiled),
      "params": dar.count_params(c),
      "terms": {"N_enc": c.encoder_tokens, "F": c.chunk_frames,
                "V": c.levels, "s_frames": c.context_frames}}


def _finish(point: dict, peak: float) -> dict:
  point["flops_per_audio_second"] = (point["flops_per_block"]
                                     / point["audio_s_per_block"])
  point["real_time_factor"] = point["audio_s_per_block"] / point["p50_s"]
  point["mfu"] = point["flops_per_block"] / point["p50_s"] / peak
  return point


def fit_complexity(points: List[dict]) -> Dict[str, dict]:
  """Least-squares fit of each mode's FLOPs/block to its formula."""
  rows: Dict[str, list] = {}
  for p in points:
    t = p["terms"]
    if p["mode"] == "outpaint":
      x = [t["K"] * (t["s"] + t["o"])]
    elif p["mode"] == "ed":
      x = [t["s"], t["K"] * t["o"]]
    elif p["mode"] == "bc":
      x = [t["o"], t["K"] * t["o"]]
    else:
      x = [t["N_enc"], t["F"], t["F"] * t["V"]]
    rows.setdefault(p["mode"], []).append((x, p["flops_per_block"]))
  fits = {}
  names = {"outpaint": ["d"], "ed": ["e", "d"], "bc": ["e", "d"],
           "discrete_ar": ["e", "d_temporal", "d_depth"]}
  for mode, data in rows.items():
    a = np.asarray([x for x, _ in data], float)
    y = np.asarray([f for _, f in data], float)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    pred = a @ coef
    fits[mode] = {"coefficients": dict(zip(names[mode], coef.tolist())),
                  "max_rel_residual": float(np.max(np.abs(pred - y) / y)),
                  "points": len(y)}
  return fits


def run(cfg, progress=print) -> dict:
  """Runs the sweep described by a `configs/bench/*.py` config."""
  from lmdm_jax.configs import dit_config, load_config
  model_cfg = load_config(cfg.model_config)
  dit = dit_config(model_cfg)
  dtypes = list(cfg.dtypes)
  peak = {d: matmul_peak(jnp.dtype(d), cfg.peak_n) for d in dtypes}
  progress(f"[study] matmul peak: " + ", ".join(
      f"{d} {v / 1e9:.0f} GFLOP/s" for d, v in peak.items()))
  params = init_params(dit, jax.random.PRNGKey(0), model_cfg.cond_tokens)
  n_lmdm = count_params(params)
  points = []
  for mode, k, s, o, b, dt in itertools.product(
      [m for m in cfg.modes if m in LMDM_MODES], cfg.steps, cfg.contexts,
      cfg.blocks, cfg.batches, dtypes):
    progress(f"[study] {mode} K={k} s={s} o={o} batch={b} {dt}")
    d = dataclasses.replace(dit, dtype=dt)
    p = lmdm_point(params, d, model_cfg.cond_tokens, model_cfg.frame_rate,
                   mode, k, s, o, b, cfg.timed_blocks)
    p.update(mode=mode, steps=k, context=s, block=o, batch=b, dtype=dt,
             params=n_lmdm)
    points.append(_finish(p, peak[dt]))
  if "discrete_ar" in cfg.modes:
    base = dar.DiscreteARConfig(**cfg.discrete_ar.to_dict())
    c = base.scaled_to(n_lmdm) if cfg.match_params else base
    for b in cfg.batches:
      progress(f"[study] discrete_ar enc={c.encoder_layers} "
               f"temporal={c.temporal_layers} batch={b}")
      p = dar_point(c, b, cfg.timed_blocks)
      p.update(mode="discrete_ar", steps=None, context=c.context_frames,
               block=c.chunk_frames, batch=b, dtype="float32")
      points.append(_finish(p, peak["float32"]))
  return {"device": device_info(), "jax": jax.__version__,
          "model_config": cfg.model_config, "matmul_peak_flops": peak,
          "points": points, "fits": fit_complexity(points)}


def markdown(result: dict) -> str:
  dev = result["device"]
  lines = [f"Device: {dev['kind']} x{dev['count']} ({dev['host_cpu']}, "
           f"{dev['host_cores']} cores), jax {result['jax']}, model "
           f"{result['model_config']}", "",
           "| mode | K | s | o | batch | dtype | GFLOP/block | GFLOP/audio s "
           "| p50 ms | p90 ms | RTF | TTFA ms | compile s | MFU | memory MB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for p in result["points"]:
    lines.append(
        f"| {p['mode']} | {p['steps'] or '-'} | {p['context']} | "
        f"{p['block']} | {p['batch']} | {p['dtype']} | "
        f"{p['flops_per_block'] / 1e9:.1f} | "
        f"{p['flops_per_audio_second'] / 1e9:.1f} | {p['p50_s'] * 1e3:.0f} | "
        f"{p['p90_s'] * 1e3:.0f} | {p['real_time_factor']:.2f} | "
        f"{p['time_to_first_audio_s'] * 1e3:.0f} | {p['compile_s']:.1f} | "
        f"{p['mfu']:.2f} | {p['memory_bytes'] / 2**20:.0f} |")
  lines += ["", "| mode | fitted per-frame costs (GFLOP) | max rel. residual |",
            "|---|---|---|"]
  for mode, f in result["fits"].items():
    coef = ", ".join(f"{k}={v / 1e9:.3f}" for k, v in
                     f["coefficients"].items())
    lines.append(f"| {mode} | {coef} | {f['max_rel_residual']:.3f} |")
  return "\n".join(lines)


def plots(result: dict, out_dir: str) -> List[str]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  dev = result["device"]
  title = f"{dev['kind']} x{dev['count']}, jax {result['jax']}"
  lmdm = [p for p in result["points"] if p["mode"] in LMDM_MODES]
  files = []
  for key, xlabel, fname in (("context", "context s (frames)",
                              "cost_vs_context.png"),
                             ("steps", "denoising steps K",
                              "cost_vs_steps.png")):
    fig, ax = plt.subplots(figsize=(6, 4))
    other = "steps" if key == "context" else "context"
    fixed = max(p[other] for p in lmdm) if lmdm else None
    for mode in LMDM_MODES:
      pts = sorted((p[key], p["flops_per_block"] / 1e9) for p in lmdm
                   if p["mode"] == mode and p[other] == fixed
                   and p["batch"] == lmdm[0]["batch"])
      if pts:
        ax.plot(*zip(*pts), marker="o", label=mode)
    for p in result["points"]:
      if p["mode"] == "discrete_ar":
        ax.axhline(p["flops_per_block"] / 1e9, ls="--", color="gray",
                   label="discrete-AR (per 2 s chunk)")
        break
    ax.set_xlabel(xlabel)
    ax.set_ylabel("GFLOP per block (XLA)")
    ax.set_title(f"{title}\n{other} = {fixed}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, fname)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    files.append(path)
  return files


def write(result: dict, json_path: str, report_dir: str) -> None:
  if json_path:
    with open(json_path, "w") as f:
      json.dump(result, f, indent=2)
  if report_dir:
    os.makedirs(report_dir, exist_ok=True)
    with open(os.path.join(report_dir, "study.md"), "w") as f:
      f.write(markdown(result) + "\n")
    result["plots"] = plots(result, report_dir)
