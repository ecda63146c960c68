"""Where the time of a BC denoise step goes, and what moves it (JSON out).

Measures, in one process on the default device, at a config's shape
(default SAO-Small, BC, s=192, o=48, W=4):

  * the dense-matmul peak (best of 5, [n,n] x [n,n], the MFU denominator);
  * the BC later step (o target frames + global token against the W-1
    cached chunks) and the fused first step, jitted alone, for a set of
    variants ("levers"): batch / CFG branches, query padding, weight dtype;
  * a profile by decomposition: every `dot` of the compiled later step is
    read from the optimised HLO, each distinct (shape, count) is timed as a
    standalone jitted matmul, and the sum is compared with the step, which
    splits the step into matmul time (and its efficiency) and the rest.

XLA CPU options cannot change inside a process, so `--flags` re-runs this
script in subprocesses with each XLA_FLAGS setting and collects the step
times side by side (the peak is re-measured in every subprocess).

  python benchmarks/bc_step_levers.py --config configs/sao_small.py \
      --json benchmarks/results/bc_step_levers_cpu.json --flags

Model FLOPs exclude query padding (as `lmdm bench`); MFU = model FLOP/s
over the peak. Weights are random: cost does not depend on them.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import re
import subprocess
import sys
import time

FLAG_SETS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "no_thunks": "--xla_cpu_use_thunk_runtime=false",
    "fast_math": "--xla_cpu_enable_fast_math=true",
    "single_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
}


def _time(fn, *args, repeats=7):
  import jax
  jax.block_until_ready(fn(*args))
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    ts.append(time.perf_counter() - t0)
  ts.sort()
  return ts[len(ts) // 2]


def _dots(hlo: str):
  """Every dot of an optimised HLO module: operand/result shapes and FLOPs.

  Operands are named, not shaped, in the text, so shapes come from the
  defining instruction (or fusion parameter) of each name.
  """
  define = re.compile(r"^\s*(?:ROOT )?%([\w.-]+) = ([a-z0-9]+)\[([0-9,]*)\]")
  shapes = {}
  for line in hlo.splitlines():
    m = define.match(line)
    if m:
      shapes[m.group(1)] = (m.group(2), [int(v) for v in m.group(3).split(",")
                                         if v])

  def dims(line, key):
    m = re.search(key + r"=\{([0-9,]*)\}", line)
    return [int(v) for v in m.group(1).split(",") if v] if m else []

  out = []
  for line in hlo.splitlines():
    m = define.match(line)
    call = re.search(r" dot\(%([\w.-]+), %([\w.-]+)\)", line)
    if not (m and call) or call.group(1) not in shapes:
      continue
    lhs, rhs = shapes[call.group(1)][1], shapes[call.group(2)][1]
    res = [int(v) for v in m.group(3).split(",") if v]
    lc = dims(line, "lhs_contracting_dims")
    k = 1
    for d in lc:
      k *= lhs[d]
    n_out = 1
    for d in res:
      n_out *= d
    out.append({"dtype": shapes[call.group(1)][0], "lhs": lhs, "rhs": rhs,
                "out": res, "lhs_contracting": lc,
                "lhs_batch": dims(line, "lhs_batch_dims"),
                "rhs_contracting": dims(line, "rhs_contracting_dims"),
                "rhs_batch": dims(line, "rhs_batch_dims"),
                "flops": 2 * n_out * k})
  return out


def _time_dot(d, dtype):
  import jax
  import jax.numpy as jnp
  from jax import lax
  a = jnp.ones(d["lhs"], dtype)
  b = jnp.ones(d["rhs"], dtype)
  dims = ((tuple(d["lhs_contracting"]), tuple(d["rhs_contracting"])),
          (tuple(d["lhs_batch"]), tuple(d["rhs_batch"])))
  f = jax.jit(lambda a, b: lax.dot_general(a, b, dims))
  return _time(f, a, b, repeats=9)


def measure(config_path: str, variants, profile: bool) -> dict:
  import jax
  import jax.numpy as jnp

  from lmdm_jax.bench.stream import call_flops, device_info
  from lmdm_jax.bench.study import matmul_peak
  from lmdm_jax.configs import dit_config, geometry, load_config
  from lmdm_jax.model.init import init_params
  from lmdm_jax.streaming import steps as st
  from lmdm_jax.streaming.sampler import Stream
  from lmdm_jax.streaming.state import StreamSpec, make_controls

  cfg = load_config(config_path)
  peak = matmul_peak(jnp.float32, 2048)
  result = {"device": device_info(), "jax": jax.__version__,
            "config": config_path,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "matmul_peak_flops": peak, "variants": {}}
  base_dit = dit_config(cfg)
  params32 = init_params(base_dit, jax.random.PRNGKey(0), cfg.cond_tokens)
  geom = geometry(cfg, "bc")
  for name, v in variants.items():
    dit = base_dit
    params = params32
    if v.get("dtype", "float32") != "float32":
      dit = dataclasses.replace(dit, dtype=v["dtype"])
      params = jax.tree.map(lambda p: p.astype(v["dtype"]), params32)
    spec = StreamSpec(dit, geom, batch=v.get("batch", 1),
                      cond_tokens=cfg.cond_tokens, steps=8,
                      cfg=v.get("cfg", False),
                      min_query_rows=v.get("min_query_rows", 64))
    controls = make_controls(spec, cfg_scale=1.0, seed=0)
    ctx = jax.random.normal(jax.random.PRNGKey(1),
                            (spec.batch, geom.context, dit.io_channels))
    state = Stream(spec).prime(params, ctx, controls)
    x = jax.random.normal(jax.random.PRNGKey(2),
                          (spec.batch, geom.block, dit.io_channels))
    t = jnp.float32(0.5)
    flops = call_flops(params, spec, state, controls)
    later = jax.jit(lambda p, s, x, t: st.later_step(p, spec, s, x, t)[1])
    first = jax.jit(lambda p, s, x, t: st.first_step(p, spec, s, x, t)[1])
    t_later = _time(later, params, state, x, t)
    t_first = _time(first, params, state, x, t)
    streams = spec.batch
    r = {"batch": spec.batch, "branches": spec.branches,
         "dtype": dit.dtype, "min_query_rows": spec.min_query_rows,
         "query_rows": spec.batch * spec.branches * (
             geom.block + 1 + spec.query_padding(geom.block + 1)),
         "later_step_s": t_later, "first_step_s": t_first,
         "later_step_flops": flops["later_step"],
         "first_step_flops": flops["first_step"],
         "later_step_mfu": flops["later_step"] / t_later / peak,
         "first_step_mfu": flops["first_step"] / t_first / peak,
         # One block of K=8 (DiT only) per stream, vs the block's duration.
         "dit_rtf_k8": (geom.block / cfg.frame_rate) * streams / (
             t_first + 7 * t_later),
         "dit_rtf_k2": (geom.block / cfg.frame_rate) * streams / (
             t_first + t_later)}
    if profile and v.get("profile"):
      hlo = later.lower(params, state, x, t).compile().as_text()
      dots = _dots(hlo)
      groups = collections.Counter(
          json.dumps({k: d[k] for k in ("dtype", "lhs", "rhs", "out",
                                        "lhs_contracting", "lhs_batch",
                                        "rhs_contracting", "rhs_batch",
                                        "flops")}, sort_keys=True)
          for d in dots)
      rows = []
      for key, count in groups.items():
        d = json.loads(key)
        td = _time_dot(d, {"f32": jnp.float32, "bf16": jnp.bfloat16}.get(
            d["dtype"], jnp.float32))
        rows.append({**d, "count": count, "seconds_each": td,
                     "gflops_each": d["flops"] / td / 1e9})
      rows.sort(key=lambda r: -r["count"] * r["seconds_each"])
      matmul_s = sum(r["count"] * r["seconds_each"] for r in rows)
      r["profile"] = {
          "dots": rows,
          "dot_count": len(dots),
          "matmul_seconds_standalone": matmul_s,
          "matmul_flops": sum(r["count"] * r["flops"] for r in rows),
          "non_matmul_seconds": t_later - matmul_s,
          "matmul_fraction": matmul_s / t_later,
      }
    result["variants"][name] = r
    print(f"[levers] {name}: later {t_later * 1e3:.0f} ms "
          f"(MFU {r['later_step_mfu']:.2f}), first {t_first * 1e3:.0f} ms, "
          f"DiT RTF K=8 {r['dit_rtf_k8']:.2f}", file=sys.stderr, flush=True)
  return result


VARIANTS = {
    "b1": {"batch": 1, "profile": True},
    "b1_nopad": {"batch": 1, "min_query_rows": 0},
    "b1_cfg": {"batch": 1, "cfg": True},
    "b2": {"batch": 2},
    "b4": {"batch": 4},
    "b1_bf16": {"batch": 1, "dtype": "bfloat16"},
}


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--config", default="configs/sao_small.py")
  ap.add_argument("--json", required=True)
  ap.add_argument("--flags", action="store_true",
                  help="also run the default variant under each XLA flag set")
  ap.add_argument("--only", default="",
                  help="comma-separated variant names (default: all)")
  ap.add_argument("--no-profile", action="store_true")
  args = ap.parse_args()
  names = [n for n in args.only.split(",") if n] or list(VARIANTS)
  unknown = set(names) - set(VARIANTS)
  if unknown:
    raise SystemExit(f"unknown variants {sorted(unknown)}; "
                     f"choose from {sorted(VARIANTS)}")
  result = measure(args.config, {n: VARIANTS[n] for n in names},
                   not args.no_profile)
  if args.flags:
    result["xla_flag_sets"] = {}
    for fname, flags in FLAG_SETS.items():
      env = dict(os.environ, XLA_FLAGS=flags)
      out = args.json + f".{fname}.tmp"
      proc = subprocess.run(
          [sys.executable, "-m", "lmdm_jax.bench.bc_step_levers", "--config",
           args.config, "--json", out,
           "--only", "b1", "--no-profile"], env=env, capture_output=True,
          text=True)
      if proc.returncode != 0:
        result["xla_flag_sets"][fname] = {
            "flags": flags, "error": proc.stderr.strip().splitlines()[-3:]}
      else:
        with open(out) as f:
          sub = json.load(f)
        os.remove(out)
        b1 = sub["variants"]["b1"]
        result["xla_flag_sets"][fname] = {
            "flags": flags, "matmul_peak_flops": sub["matmul_peak_flops"],
            "later_step_s": b1["later_step_s"],
            "first_step_s": b1["first_step_s"],
            "later_step_mfu": b1["later_step_mfu"]}
      print(f"[levers] flags {fname}: {result['xla_flag_sets'][fname]}",
            file=sys.stderr, flush=True)
  with open(args.json, "w") as f:
    json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
