"""`lmdm bench peer`: ours vs stable-audio-tools' PyTorch DiT, one run.

  lmdm bench peer --config configs/sao_small.py --steps 8 \
      --python .ci/refenv/bin/python --json peer.json

Both sides run on the same machine in the same invocation, one after the
other (never concurrently), at the config's window (s + o frames, batch B,
no CFG), with random weights (cost does not depend on them):

  equal work   one forward of the whole window: stable-audio-tools'
               `DiffusionTransformer` vs our jitted `DiT.__call__`.
  equal task   one block of K steps: the standard outpainting continuation
               in PyTorch (K whole-window forwards, context re-noised each
               step) vs our `Stream.block` in `outpaint` and in `bc` mode
               (conditioning, K network calls, slide).

Ratios are PyTorch time / our time (> 1: ours is faster). Our model carries
LMDM's input-add projection (65 -> 1024) and postpends the global token;
SAO's has neither: the extra work is < 0.1 % of a forward. The PyTorch side
is `lmdm_jax/bench/peer_torch.py`, run with `--python` (an interpreter that
has torch and stable-audio-tools; `.ci/setup_refenv.sh` makes one).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp

from lmdm_jax.bench.stream import device_info
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.init import count_params, init_params
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import StreamSpec, make_controls

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_PYTHON = os.environ.get(
    "LMDM_REFENV_PYTHON", os.path.join(ROOT, ".ci", "refenv", "bin",
                                       "python"))


def torch_kwargs(dit) -> dict:
  """stable-audio-tools `DiffusionTransformer` kwargs of the same shape.

  (SAT fixes 256 Fourier timestep features; SAO-Small uses 256 too.)
  """
  if dit.cond_token_dim == 0 or dit.global_cond_dim == 0:
    raise ValueError("the peer comparison needs a model with cross-attention "
                     "and a global condition (SAO's text models)")
  return {"io_channels": dit.io_channels, "embed_dim": dit.embed_dim,
          "depth": dit.depth, "num_heads": dit.num_heads,
          "cond_token_dim": dit.cond_token_dim,
          "global_cond_dim": dit.global_cond_dim,
          "project_cond_tokens": dit.project_cond_tokens,
          "transformer_type": "continuous_transformer",
          "attn_kwargs": {"qk_norm": dit.qk_norm}}


def _median(fn, repeats):
  jax.block_until_ready(fn())
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    ts.append(time.perf_counter() - t0)
  return statistics.median(ts), ts


def ours(cfg, steps: int, batch: int, repeats: int, progress=print) -> dict:
  """Full-window forward and one block per mode, timed in this process."""
  from lmdm_jax.configs import dit_config, geometry
  dit = dit_config(cfg)
  params = init_params(dit, jax.random.PRNGKey(0), cfg.cond_tokens)
  params = jax.tree.map(jnp.asarray, params)
  g = geometry(cfg, "bc")
  n = g.context + g.block
  key = jax.random.PRNGKey(1)
  x = jax.random.normal(key, (batch, n, dit.io_channels))
  cross = jax.random.normal(key, (batch, cfg.cond_tokens, dit.cond_token_dim))
  glob = jax.random.normal(key, (batch, dit.global_cond_dim))
  add = jnp.zeros((batch, n, dit.input_add_dim)) if dit.input_add_dim \
      else None
  t = jnp.full((batch,), 0.5)
  fwd = jax.jit(lambda p, x, t, c, gl, a: DiT(dit).apply(
      {"params": p}, x, t, c, gl, a))
  progress("[peer] ours: full-window forward ...")
  full, full_all = _median(lambda: fwd(params, x, t, cross, glob, add),
                           repeats)
  out = {"params": count_params(params), "full_forward_s": full,
         "full_forward_all_s": full_all}
  context = jax.random.normal(key, (batch, g.context, dit.io_channels))
  for mode in ("outpaint", "bc"):
    spec = StreamSpec(dit, geometry(cfg, mode), batch=batch,
                      cond_tokens=cfg.cond_tokens, steps=steps,
                      sampler="euler")
    stream = Stream(spec)
    controls = make_controls(spec, cross_tokens=cross, global_cond=glob,
                             cfg_scale=1.0, seed=0)
    state = stream.prime(params, context, controls)
    progress(f"[peer] ours: {mode} block, K = {steps} ...")
    holder = {"state": state}

    def block():
      holder["state"], y = stream.block(params, holder["state"], controls)
      return y

    b, b_all = _median(block, repeats)
    out[f"{mode}_block_s"] = b
    out[f"{mode}_block_all_s"] = b_all
  return out


def theirs(cfg, steps: int, batch: int, repeats: int, python: str) -> dict:
  from lmdm_jax.configs import dit_config, geometry
  if not os.path.exists(python):
    raise FileNotFoundError(
        f"no PyTorch interpreter at {python}: pass --python PATH to one with "
        f"torch and stable-audio-tools, or run `bash .ci/setup_refenv.sh`")
  dit = dit_config(cfg)
  g = geometry(cfg, "bc")
  spec = {"dit": torch_kwargs(dit), "batch": batch, "context": g.context,
          "block": g.block, "cond_tokens": cfg.cond_tokens, "steps": steps,
          "repeats": repeats, "threads": os.cpu_count()}
  with tempfile.TemporaryDirectory() as tmp:
    spec_path = os.path.join(tmp, "spec.json")
    out_path = os.path.join(tmp, "out.json")
    with open(spec_path, "w") as f:
      json.dump(spec, f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLA")}
    proc = subprocess.run(
        [python, os.path.join(os.path.dirname(__file__), "peer_torch.py"),
         spec_path, out_path], capture_output=True, text=True, env=env)
    if proc.returncode:
      raise RuntimeError(f"PyTorch side failed:\n{proc.stderr[-3000:]}")
    with open(out_path) as f:
      return json.load(f)


def run(config_path: str, cfg, steps: int, batch: int, repeats: int,
        python: str = DEFAULT_PYTHON, progress=print) -> dict:
  if steps < 1 or batch < 1 or repeats < 1:
    raise ValueError(f"steps, batch and repeats must be >= 1, got {steps}, "
                     f"{batch}, {repeats}")
  from lmdm_jax.configs import geometry
  g = geometry(cfg, "bc")
  progress("[peer] PyTorch side (stable-audio-tools) ...")
  torch_side = theirs(cfg, steps, batch, repeats, python)
  jax_side = ours(cfg, steps, batch, repeats, progress)
  audio_s = g.block / cfg.frame_rate
  return {
      "device": device_info(), "jax": jax.__version__, "config": config_path,
      "steps": steps, "batch": batch, "repeats": repeats,
      "window": {"context": g.context, "block": g.block},
      "block_audio_s": audio_s,
      "torch": torch_side, "ours": jax_side,
      "ratios": {
          "equal_work_full_forward":
              torch_side["full_forward_s"] / jax_side["full_forward_s"],
          "equal_task_outpaint_vs_outpaint":
              torch_side["outpaint_block_s"] / jax_side["outpaint_block_s"],
          "equal_task_outpaint_vs_bc":
              torch_side["outpaint_block_s"] / jax_side["bc_block_s"]},
      "real_time_factor": {
          "torch_outpaint": audio_s / torch_side["outpaint_block_s"],
          "ours_outpaint": audio_s / jax_side["outpaint_block_s"],
          "ours_bc": audio_s / jax_side["bc_block_s"]},
  }


def markdown(r: dict) -> str:
  t, o, q = r["torch"], r["ours"], r["ratios"]
  rows = [f"Device: {r['device']['host_cpu']} ({r['device']['platform']}, "
          f"{r['device']['count']} device(s)); K = {r['steps']}, batch "
          f"{r['batch']}, window {r['window']['context']} + "
          f"{r['window']['block']} frames",
          "", "| what | PyTorch (SAT) s | ours s | ratio |", "|---|---|---|---|",
          f"| full-window forward | {t['full_forward_s']:.3f} | "
          f"{o['full_forward_s']:.3f} | {q['equal_work_full_forward']:.2f} |",
          f"| block, outpaint vs outpaint | {t['outpaint_block_s']:.2f} | "
          f"{o['outpaint_block_s']:.2f} | "
          f"{q['equal_task_outpaint_vs_outpaint']:.2f} |",
          f"| block, outpaint vs ours bc | {t['outpaint_block_s']:.2f} | "
          f"{o['bc_block_s']:.2f} | {q['equal_task_outpaint_vs_bc']:.2f} |"]
  return "\n".join(rows)
