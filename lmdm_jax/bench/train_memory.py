"""XLA memory analysis of the stage-1 train step at a config's shape.

The step is the trainer's own (`lmdm_jax.train.parallel.make_train_step`
on a one-device mesh: what each device of a data-parallel run executes):
the per-example draws and flow-matching loss of
`lmdm_jax.train.finetune`, its gradient summed over `accum` microbatches
under `lax.scan`, the `pmean`, the AdamW update of the config's `optim`
(and the EMA when `train.ema_decay` > 0), the whole TrainState donated.
Everything is abstract (`jax.ShapeDtypeStruct`, `jax.eval_shape` of the
trainer's `init_state`): no parameter is materialised, so the SAO-Small
shape (configs/finetune.py:bc, the default) at the paper's per-device
batch compiles on a CPU host. The figures are those of the backend that
compiles (its fusion and scheduling); see docs/training.md.

Peak device memory of a step ~ argument + output + temp - alias bytes.

  PYTHONPATH=. python3 benchmarks/train_memory.py --batch 32 \\
      --remat none,layer --accum 1,4 \\
      --json benchmarks/results/train_memory_sao_small.json

Comma-separated lists (--batch, --accum, --remat, --dtype) run every
combination, each compiled in its own subprocess (so its host RAM, the
process's peak RSS, is its own). The batch is per device; accum must
divide it. Text conditioning is the batch's `cross_tokens` [B, 65, 768]
and `global_cond` [B, 768] (what the data pipeline feeds), so an encoder
run on the device inside the step is not counted.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp

from lmdm_jax.bench.arc_memory import analyse, device, memory_table
from lmdm_jax.configs import load_config
from lmdm_jax.model.init import count_params
from lmdm_jax.train import finetune, objective, parallel
from lmdm_jax.train import state as train_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "finetune.py:bc")
REMATS = ("none", "layer", "layer_dots")
DTYPES = ("float32", "bfloat16")


def step_config(config: str, batch: int, accum: int = 1,
                remat: str = "none", dtype: str = "float32"):
  """The finetune config with the model's remat/dtype and the per-device
  batch set (a one-device mesh: global batch = per-device batch)."""
  if batch < 1:
    raise ValueError(f"batch must be >= 1, got {batch}")
  if accum < 1 or batch % accum:
    raise ValueError(f"accum {accum} must be >= 1 and divide batch {batch}")
  if remat not in REMATS:
    raise ValueError(f"remat must be one of {REMATS}, got {remat!r}")
  if dtype not in DTYPES:
    raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
  cfg = load_config(config).copy_and_resolve_references()
  with cfg.unlocked():
    cfg.model.remat = remat
    cfg.model.dtype = dtype
    cfg.train.batch_size = batch
    cfg.train.accum_steps = accum
    cfg.init.params = ""
  return cfg


def build(cfg):
  """(step, (state, batch)) with abstract arguments, and an info dict.

  state: the trainer's TrainState shapes (`objective.abstract_state`:
  fp32 parameters, AdamW moments, EMA if the config keeps one); batch:
  latents [B, s + o, C], cross_tokens [B, L, Dc], global_cond [B, G].
  """
  spec = finetune.FinetuneSpec.from_config(cfg)
  tx = train_state.make_optimizer(cfg.optim)
  state = objective.abstract_state(cfg)
  m, g = spec.model, spec.geometry
  b = int(cfg.train.batch_size)
  f32 = jnp.float32
  batch = {"latents": jax.ShapeDtypeStruct((b, g.window, m.io_channels),
                                           f32),
           "cross_tokens": jax.ShapeDtypeStruct(
               (b, int(cfg.cond_tokens), max(m.cond_token_dim, 1)), f32),
           "global_cond": jax.ShapeDtypeStruct(
               (b, max(m.global_cond_dim, 1)), f32)}
  mesh = parallel.make_mesh(jax.devices()[:1])
  accum = int(cfg.train.accum_steps)
  step = parallel.make_train_step(spec, tx, mesh, accum,
                                  float(cfg.train.ema_decay))
  info = {"mode": g.mode, "batch": b, "accum": accum,
          "microbatch": b // accum, "dtype": m.dtype, "remat": m.remat,
          "frames": g.window, "context": g.context, "block": g.block,
          "width": m.embed_dim, "depth": m.depth, "heads": m.num_heads,
          "latent_channels": m.io_channels,
          "cond_tokens": int(cfg.cond_tokens),
          "cond_token_dim": m.cond_token_dim,
          "global_cond_dim": m.global_cond_dim,
          "ema": float(cfg.train.ema_decay) > 0,
          "params": count_params(state.params)}
  return step, (state, batch), info


def run_one(config: str, batch: int, accum: int = 1, remat: str = "none",
            dtype: str = "float32") -> dict:
  cfg = step_config(config, batch, accum, remat, dtype)
  step, args, info = build(cfg)
  return {"config": config, **info, **device(), **analyse(step, args)}


def _split(text, kind=str):
  return [kind(v) for v in str(text).split(",") if v]


def table(runs) -> str:
  return memory_table([(None, r, r) for r in runs])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default=DEFAULT_CONFIG,
                 help="finetune config file[:arg] (default SAO-Small, bc)")
  p.add_argument("--batch", default="32", help="per-device batch(es)")
  p.add_argument("--accum", default="1",
                 help="microbatches per per-device batch (gradient "
                      "accumulation by lax.scan)")
  p.add_argument("--remat", default="none",
                 help=f"DiTConfig.remat value(s): {','.join(REMATS)}")
  p.add_argument("--dtype", default="float32",
                 help=f"model compute dtype(s): {','.join(DTYPES)}")
  p.add_argument("--inline", action="store_true",
                 help="compile every combination in this process")
  p.add_argument("--json", default=None, help="output JSON ('-': stdout)")
  a = p.parse_args(argv)
  combos = list(itertools.product(_split(a.batch, int), _split(a.accum, int),
                                  _split(a.remat), _split(a.dtype)))
  for batch, accum, remat, dtype in combos:     # refuse early, not mid-run
    step_config(a.config, batch, accum, remat, dtype)
  runs = []
  for batch, accum, remat, dtype in combos:
    if a.inline or len(combos) == 1:
      runs.append(run_one(a.config, batch, accum, remat, dtype))
      continue
    cmd = [sys.executable, "-m", "lmdm_jax.bench.train_memory", "--config",
           a.config, "--batch", str(batch), "--accum", str(accum),
           "--remat", remat, "--dtype", dtype, "--json", "-"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [v for v in [env.get("PYTHONPATH")] if v])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=env)
    r = json.loads(out.stdout)["runs"][0]
    print(table([r]).split("\n", 1)[1], file=sys.stderr, flush=True)
    runs.append(r)
    if a.json and a.json != "-":     # what is done survives an interrupt
      _write(a.json, {"benchmark": "train_memory", **device(), "runs": runs})
  result = {"benchmark": "train_memory", **device(), "runs": runs}
  if a.json == "-":
    print(json.dumps(result))
    return result
  print(table(runs))
  if a.json:
    _write(a.json, result)
  return result


def _write(path, result):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
