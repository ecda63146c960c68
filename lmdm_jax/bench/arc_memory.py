"""XLA memory analysis of the ARC-Forcing generator and discriminator steps.

Each step is the trainer's own (`lmdm_jax.train.arc.train.make_steps`, what one
device of a data-parallel run executes): per-example rollouts, the
player's loss (`lmdm_jax.train.arc.objective`) and its gradient accumulated over
microbatches, an AdamW update (optax: clip 1.0, lr 1e-6, betas 0.9/0.95,
wd 0.01) and, for the generator, its EMA; the whole ARCState (both
players' parameters and optimiser states, the EMA) is donated.
Everything is abstract (`jax.ShapeDtypeStruct`, `jax.eval_shape`): no
parameter is ever materialised, so the SAO-Small shape at the paper's
per-device batch compiles on a CPU host. The figures are those of the
backend that compiles (its fusion and scheduling), see docs/arc-memory.md.

Peak device memory of a step ~ argument + output + temp - alias bytes.

  PYTHONPATH=. python3 benchmarks/arc_memory.py --batch 40 --blocks 12 \\
      --remat none,layer --dtype float32,bfloat16 \\
      --json benchmarks/results/arc_memory.json

Comma-separated lists run every combination, each step compiled in its own
subprocess (so its host RAM, the process's peak RSS, is its own).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import optax

from lmdm_jax.train.arc.discriminator import Discriminator, DiscriminatorConfig
from lmdm_jax.train.arc.objective import ARCConfig, ARCSpec
from lmdm_jax.train.arc.train import ARCState, make_steps
from lmdm_jax.configs import dit_config, geometry, load_config
from lmdm_jax.model.init import count_params, param_shapes
from lmdm_jax.streaming.state import StreamSpec
from lmdm_jax.train import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "finetune.py:bc")
MEMORY_FIELDS = ("argument_size_in_bytes", "output_size_in_bytes",
                 "temp_size_in_bytes", "alias_size_in_bytes",
                 "generated_code_size_in_bytes")
STEPS = ("generator", "discriminator")
GIB = 2.0 ** 30


def optimizer():
  """ARC-Forcing's AdamW (paper code): both players use the same one."""
  return optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(1e-6, b1=0.9, b2=0.95, weight_decay=0.01))


def _abstract(tree):
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                      tree)


def build(cfg, mode: str, batch: int, blocks: int, k_max: int = 5,
          dtype: str = "float32", remat: str = "none", exit_layer: int = 11,
          head_channels: int = 128, accum: int = 1, ema: bool = True):
  """The trainer's own generator and discriminator steps, abstractly.

  `lmdm_jax.train.arc.train.make_steps` on a one-device mesh (what each device of
  a data-parallel run executes: its per-device batch as `accum`
  microbatches under `lax.scan`, the whole ARCState donated), for an
  ARCSpec built from a stage-1 config's model and geometry. Returns
  {"generator": (step, args), "discriminator": (step, args), "info"}; args
  are ShapeDtypeStructs (state, batch). `ema`: the state carries the
  generator's EMA (paper code: decay 0.99), as a real run's does.
  """
  if accum < 1 or batch % accum:
    raise ValueError(f"accum {accum} must be >= 1 and divide batch {batch}")
  m = dataclasses.replace(dit_config(cfg), dtype=dtype, remat=remat)
  geo = geometry(cfg, mode)
  stream = StreamSpec(m, geo, batch=1, cond_tokens=cfg.cond_tokens,
                      steps=k_max, sampler="pingpong", cfg=False,
                      min_query_rows=0)
  dcfg = DiscriminatorConfig(
      backbone=dataclasses.replace(m, input_add_dim=0),
      exit_layer=min(exit_layer, m.depth - 1), channels=head_channels)
  spec = ARCSpec(stream, dcfg, ARCConfig(blocks=blocks, k_min=1,
                                         k_max=k_max))
  s, n = geo.context, spec.window
  f32 = jnp.float32
  data = {"latents": jax.ShapeDtypeStruct((batch, n, m.io_channels), f32),
          "cross_tokens": jax.ShapeDtypeStruct(
              (batch, cfg.cond_tokens, m.cond_token_dim), f32),
          "global_cond": jax.ShapeDtypeStruct((batch, m.global_cond_dim),
                                              f32)}
  params_g = _abstract(param_shapes(m, cfg.cond_tokens))

  def init_d():
    x = jnp.zeros((1, n, m.io_channels))
    return Discriminator(dcfg).init(
        jax.random.PRNGKey(0), x, jnp.ones((1,)),
        jnp.zeros((1, cfg.cond_tokens, m.cond_token_dim)),
        jnp.zeros((1, m.global_cond_dim)), s)["params"]

  params_d = _abstract(jax.eval_shape(init_d))
  tx = optimizer()
  state = ARCState(
      step=jax.ShapeDtypeStruct((), jnp.int32), g_params=params_g,
      g_opt=_abstract(jax.eval_shape(tx.init, params_g)), d_params=params_d,
      d_opt=_abstract(jax.eval_shape(tx.init, params_d)),
      rng=jax.ShapeDtypeStruct((2,), jnp.uint32),
      g_ema=params_g if ema else None)
  mesh = parallel.make_mesh(jax.devices()[:1])
  g_step, d_step = make_steps(spec, tx, tx, mesh, accum_steps=accum,
                              ema_decay=0.99 if ema else 0.0)
  info = {"mode": mode, "batch": batch, "accum": accum,
          "microbatch": batch // accum, "blocks": blocks, "k_max": k_max,
          "dtype": dtype, "remat": remat, "frames": n, "context": s,
          "block": geo.block, "window_chunks": geo.window_chunks,
          "width": m.embed_dim, "depth": m.depth, "heads": m.num_heads,
          "latent_channels": m.io_channels,
          "cond_tokens": cfg.cond_tokens,
          "cond_token_dim": m.cond_token_dim,
          "global_cond_dim": m.global_cond_dim,
          "disc_exit_layer": dcfg.exit_layer,
          "disc_head_channels": dcfg.channels, "generator_ema": ema,
          "params_generator": count_params(params_g),
          "params_discriminator": count_params(params_d)}
  return {"generator": (g_step, (state, data)),
          "discriminator": (d_step, (state, data)),
          "info": info}


def _flops(compiled):
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 - backends without cost analysis
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or "flops" not in cost:
    return None
  return float(cost["flops"])


def analyse(fn, args) -> dict:
  """Lowers and compiles a jitted step (its state donated)."""
  t0 = time.perf_counter()
  lowered = fn.lower(*args)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  ma = compiled.memory_analysis()
  out = {"lower_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2)}
  for name in sorted(dir(ma)):
    if name.endswith("_in_bytes"):
      out[name] = int(getattr(ma, name))
  for name in MEMORY_FIELDS:
    out.setdefault(name, None)
  peak = (out["argument_size_in_bytes"] + out["output_size_in_bytes"]
          + out["temp_size_in_bytes"] - out["alias_size_in_bytes"])
  out["peak_bytes"] = peak
  for name in MEMORY_FIELDS:
    if out[name] is not None:
      out[name.replace("_size_in_bytes", "_gib")] = round(
          out[name] / GIB, 3)
  out["peak_gib"] = round(peak / GIB, 3)
  out["flops"] = _flops(compiled)
  out["host_peak_rss_gib"] = round(
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 2)
  return out


def device() -> dict:
  d = jax.devices()[0]
  cpu = ""
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((l.split(":", 1)[1].strip() for l in f
                  if l.startswith("model name")), "")
  except OSError:
    pass
  return {"platform": d.platform, "device_kind": d.device_kind,
          "jax": jax.__version__, "host_cpu": cpu,
          "host_cores": os.cpu_count()}


def run_one(config: str, mode: str, batch: int, blocks: int, k_max: int,
            dtype: str, remat: str, steps=STEPS, accum: int = 1) -> dict:
  built = build(load_config(config), mode, batch, blocks, k_max, dtype,
                remat, accum=accum)
  res = {"config": config, **built["info"], **device(), "steps": {}}
  for step in steps:
    fn, args = built[step]
    res["steps"][step] = analyse(fn, args)
  return res


def _split(text, kind=str):
  return [kind(v) for v in str(text).split(",") if v]


def memory_table(rows) -> str:
  """One line per analysed step: rows of (step label or None, run dict
  with batch / accum / dtype / remat, `analyse` result). Shared with
  bench/train_memory.py."""
  label = any(step is not None for step, _, _ in rows)
  lines = [(f"{'step':14s} " if label else "")
           + f"{'batch':>5s} {'accum':>5s} {'dtype':>8s} {'remat':>10s} "
           f"{'arg':>7s} {'out':>7s} {'temp':>8s} {'alias':>7s} "
           f"{'peak':>8s} GiB  {'compile':>7s} s  {'rss':>5s} GiB"]
  for step, r, a in rows:
    lines.append(
        (f"{step:14s} " if label else "")
        + f"{r['batch']:5d} {r.get('accum', 1):5d} {r['dtype']:>8s} "
        f"{r['remat']:>10s} {a['argument_gib']:7.2f} {a['output_gib']:7.2f} "
        f"{a['temp_gib']:8.2f} {a['alias_gib']:7.2f} {a['peak_gib']:8.2f}"
        f"      {a['compile_s']:7.1f}    {a['host_peak_rss_gib']:5.1f}")
  return "\n".join(lines)


def _table(runs) -> str:
  return memory_table([(step, r, a) for r in runs
                       for step, a in r["steps"].items()])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default=DEFAULT_CONFIG,
                 help="config file[:arg] (model, geometry, cond_tokens)")
  p.add_argument("--mode", default="bc", choices=("bc", "ed"))
  p.add_argument("--batch", default="40", help="per-device batch(es)")
  p.add_argument("--blocks", type=int, default=12)
  p.add_argument("--k-max", type=int, default=5)
  p.add_argument("--dtype", default="float32",
                 help="model compute dtype(s): float32,bfloat16")
  p.add_argument("--remat", default="none",
                 help="DiTConfig.remat value(s): none,layer,layer_dots")
  p.add_argument("--steps", default="generator,discriminator")
  p.add_argument("--accum", type=int, default=1,
                 help="microbatches per per-device batch (gradient "
                      "accumulation by lax.scan)")
  p.add_argument("--inline", action="store_true",
                 help="compile every combination in this process")
  p.add_argument("--json", default=None)
  a = p.parse_args(argv)
  steps = _split(a.steps)
  for s in steps:
    if s not in STEPS:
      raise SystemExit(f"unknown step {s!r}; known: {STEPS}")
  combos = list(itertools.product(_split(a.batch, int), _split(a.dtype),
                                  _split(a.remat)))
  runs = []
  for batch, dtype, remat in combos:
    if a.inline or (len(combos) == 1 and len(steps) == 1):
      runs.append(run_one(a.config, a.mode, batch, a.blocks, a.k_max, dtype,
                          remat, steps, a.accum))
      continue
    merged = None
    for step in steps:      # a fresh process per compile: its own RSS
      cmd = [sys.executable, "-m", "lmdm_jax.bench.arc_memory", "--config",
             a.config, "--mode", a.mode, "--batch", str(batch), "--blocks",
             str(a.blocks), "--k-max", str(a.k_max), "--dtype", dtype,
             "--remat", remat, "--steps", step, "--accum", str(a.accum),
             "--json", "-"]
      env = dict(os.environ)
      env["PYTHONPATH"] = os.pathsep.join(
          [ROOT] + [v for v in [env.get("PYTHONPATH")] if v])
      out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                           env=env)
      r = json.loads(out.stdout)["runs"][0]
      print(_table([r]).split("\n", 1)[1], file=sys.stderr, flush=True)
      if merged is None:
        merged = r
      else:
        merged["steps"].update(r["steps"])
    runs.append(merged)
  result = {"benchmark": "arc_memory", **device(), "runs": runs}
  if a.json == "-":
    print(json.dumps(result))
    return result
  print(_table(runs))
  if a.json:
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
