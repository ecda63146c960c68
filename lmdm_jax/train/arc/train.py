"""ARC-Forcing post-training: state, data-parallel G and D steps, the run.

The generator (a stage-1 LMDM) rolls out R blocks from real, dropped-out
context on the inference stream's own functions (`arc.rollout`); the
discriminator (warmed-up base DiT to layer L + ConvNeXt head) scores both
sequences noised with the same (t, eps). Updates alternate: even steps
train the generator, odd steps the discriminator, each with its own AdamW.

Data parallelism is stage 1's (`train.parallel`): a per-device function
under `jax.shard_map` over the ("data",) mesh, gradients `pmean`-ed, state
replicated, gradient accumulation by `lax.scan` over microbatches. Every
random draw that differs between examples is keyed by the example's global
index, and the rollout's step counts by the step alone, so 1 device and N
devices compute the same update. The contrastive term's prompt permutation
is global too: example i is paired with example i - 1 of the *global*
batch (an all-gather of the prompt tokens), not of the device's shard.

The loop (checkpoints, resume, SIGTERM saves, metrics) is stage 1's
(`lmdm_jax.train.loop.run`); this module gives it the state and the steps.

  workdir/metrics.jsonl   per log step: the player trained, its loss and
                          grad norm, D(real) - D(fake) gap, contrastive loss
                          and accuracy (D steps), rollout step histogram
                          (G steps), step time
  workdir/ckpt/<step>/    orbax checkpoints; resume is exact, SIGTERM saves
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from lmdm_jax.model.init import init_params
from lmdm_jax.train import parallel
from lmdm_jax.train import state as train_state
from lmdm_jax.train.arc.discriminator import Discriminator
from lmdm_jax.train.arc.objective import (ARCSpec, discriminator_loss,
                                          generator_loss)
from lmdm_jax.train.arc.rollout import sample_steps
from lmdm_jax.train.loop import check_config, run, select_devices

AXIS = parallel.AXIS


@flax.struct.dataclass
class ARCState:
  """step []: updates taken (both players); rng [2] base key; g_ema None
  when the generator EMA is off."""
  step: jnp.ndarray
  g_params: Any
  g_opt: Any
  d_params: Any
  d_opt: Any
  rng: jnp.ndarray
  g_ema: Optional[Any] = None


def global_roll(x):
  """P(c) over the global batch inside shard_map: row i of the global batch
  gets row i - 1's value (x is this device's [B_local, ...] shard)."""
  full = jax.lax.all_gather(x, AXIS, tiled=True)
  start = jax.lax.axis_index(AXIS) * x.shape[0]
  return jax.lax.dynamic_slice_in_dim(jnp.roll(full, 1, axis=0), start,
                                      x.shape[0], axis=0)


# -- steps -----------------------------------------------------------------
def make_steps(spec: ARCSpec, tx_g, tx_d, mesh, accum_steps: int = 1,
               ema_decay: float = 0.0, sched_g=None, sched_d=None):
  """Returns (g_step, d_step): jitted (state, batch) -> (state, metrics),
  state donated. g_step updates the generator (and its EMA), d_step the
  discriminator; both advance state.step."""
  if accum_steps < 1:
    raise ValueError(f"accum_steps must be >= 1, got {accum_steps}")
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
  arc = spec.arc

  def per_device(state: ARCState, batch: dict, player: str):
    local_b = batch["latents"].shape[0]
    step_key = jax.random.fold_in(state.rng, state.step)
    # The same k per block on every device and microbatch.
    steps = sample_steps(jax.random.fold_in(step_key, 2**31 - 1), arc.blocks,
                         arc.k_min, arc.k_max)
    ids = jax.lax.axis_index(AXIS) * local_b + jnp.arange(local_b)
    keys = jax.vmap(lambda i: jax.random.fold_in(step_key, i))(ids)
    batch = dict(batch)
    if player == "d":
      batch["wrong_tokens"] = global_roll(batch["cross_tokens"])
      mine, other = state.d_params, state.g_params
      fn = discriminator_loss
    else:
      mine, other = state.g_params, state.d_params
      fn = generator_loss
    mine_v = jax.lax.pcast(mine, AXIS, to="varying")
    micro = parallel.microbatches((batch, keys), accum_steps)
    grad_fn = jax.value_and_grad(
        lambda p, b, k: fn(p, other, spec, b, k, steps), has_aux=True)

    def metrics_and_grads(p, b, k):
      (_, m), g = grad_fn(p, b, k)
      return m, g

    grads, metrics = parallel.accumulated_grads(metrics_and_grads, mine_v,
                                                micro, accum_steps)
    metrics = {f"{player}_{k}": v for k, v in metrics.items()}
    metrics[f"{player}_grad_norm"] = optax.tree.norm(grads)
    if player == "d":
      updates, opt = tx_d.update(grads, state.d_opt, state.d_params)
      new = optax.apply_updates(state.d_params, updates)
      if sched_d is not None:
        metrics["d_lr"] = jnp.asarray(sched_d(state.step // 2), jnp.float32)
      state = state.replace(d_params=new, d_opt=opt)
    else:
      updates, opt = tx_g.update(grads, state.g_opt, state.g_params)
      new = optax.apply_updates(state.g_params, updates)
      ema = state.g_ema
      if ema_decay > 0:
        ema = jax.tree.map(lambda e, p: ema_decay * e + (1 - ema_decay) * p,
                           ema, new)
      if sched_g is not None:
        metrics["g_lr"] = jnp.asarray(sched_g(state.step // 2), jnp.float32)
      metrics["g_steps_hist"] = jnp.bincount(steps, length=arc.k_max + 1
                                             ).astype(jnp.float32)
      state = state.replace(g_params=new, g_opt=opt, g_ema=ema)
    return state.replace(step=state.step + 1), metrics

  def wrap(player):
    f = jax.shard_map(lambda s, b: per_device(s, b, player), mesh=mesh,
                      in_specs=(P(), P(AXIS)), out_specs=(P(), P()))
    return jax.jit(f, donate_argnums=(0,))

  return wrap("g"), wrap("d")


_STEPS_CACHE = {}


def cached_steps(spec: ARCSpec, cfg, mesh):
  """`make_steps` for a config, memoised on everything it depends on (a
  resumed run in the same process reuses the compiled steps)."""
  key = (spec, cfg.optim_g.to_json(sort_keys=True),
         cfg.optim_d.to_json(sort_keys=True),
         tuple(d.id for d in mesh.devices.flat), int(cfg.train.accum_steps),
         float(cfg.train.ema_decay))
  if key not in _STEPS_CACHE:
    _STEPS_CACHE[key] = make_steps(
        spec, train_state.make_optimizer(cfg.optim_g),
        train_state.make_optimizer(cfg.optim_d), mesh,
        int(cfg.train.accum_steps), float(cfg.train.ema_decay),
        train_state.lr_schedule(cfg.optim_g),
        train_state.lr_schedule(cfg.optim_d))
  return _STEPS_CACHE[key]


# -- initial state ---------------------------------------------------------
def init_state(cfg, spec: ARCSpec, tx_g, tx_d, log=print,
               load: bool = True) -> ARCState:
  """Generator from cfg.init.params (stage 1), discriminator backbone from
  cfg.disc.init (a warmed-up base model) or, when empty, the generator;
  head freshly initialised. load=False: shapes only (for restore)."""
  key = jax.random.PRNGKey(int(cfg.seed))
  k_g, k_d, k_train = jax.random.split(key, 3)
  g = init_params(spec.stream.model, k_g, spec.stream.cond_tokens)
  if load:
    if not cfg.init.params:
      raise ValueError("ARC-Forcing starts from a stage-1 model: set "
                       "--config.init.params (orbax params or a package)")
    g = train_state.merge_params(
        g, train_state.load_params_any(cfg.init.params), log)
  m = spec.stream.model
  n = spec.window
  glob = jnp.zeros((1, m.global_cond_dim)) if m.global_cond_dim else None
  d = Discriminator(spec.disc).init(
      k_d, jnp.zeros((1, n, m.io_channels)), jnp.ones((1,)),
      jnp.zeros((1, spec.stream.cond_tokens, m.cond_token_dim)), glob,
      spec.stream.geometry.context)["params"]
  if load:
    base = (train_state.load_params_any(cfg.disc.init) if cfg.disc.init
            else g)
    d = dict(d, backbone=train_state.backbone_from(d["backbone"], base, log))
  ema = g if float(cfg.train.ema_decay) > 0 else None
  return ARCState(step=jnp.zeros((), jnp.int32), g_params=g,
                  g_opt=tx_g.init(g), d_params=d, d_opt=tx_d.init(d),
                  rng=k_train, g_ema=ema)


# -- the loop --------------------------------------------------------------
def train(cfg, workdir: str, log: Callable = print, progress: bool = True,
          stop_after: Optional[int] = None,
          after_step: Optional[Callable[[int], None]] = None) -> ARCState:
  """Post-trains (or resumes) to cfg.train.steps updates; returns the
  state. Arguments as `lmdm_jax.train.loop.train`, whose loop it runs."""
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh(select_devices(int(cfg.mesh.devices)))
  check_config(cfg, mesh.size)
  spec = ARCSpec.from_config(cfg)
  tx_g = train_state.make_optimizer(cfg.optim_g)
  tx_d = train_state.make_optimizer(cfg.optim_d)
  g_step, d_step = cached_steps(spec, cfg, mesh)
  log_every = max(int(cfg.train.log_every), 1)

  def scalars(step, done, end, metrics, timing):
    # Both updates of a G/D pair are logged (every log_every steps).
    if (step // 2 * 2) % log_every and done != end:
      return None
    m = jax.device_get(metrics)
    out = {k: (np.asarray(v).tolist() if np.ndim(v) else float(v))
           for k, v in m.items()}
    out["step_s"] = timing()["step_s"]
    return out

  return run(
      cfg, workdir, mesh, lambda: init_state(cfg, spec, tx_g, tx_d, log),
      lambda: jax.eval_shape(lambda: init_state(cfg, spec, tx_g, tx_d, log,
                                                load=False)),
      lambda step: g_step if step % 2 == 0 else d_step, scalars, "[arc]",
      log=log, progress=progress, stop_after=stop_after,
      after_step=after_step)


def metrics_summary(path: str) -> dict:
  """Last logged value of every metric in a metrics.jsonl."""
  last = {}
  with open(path) as f:
    for line in f:
      last.update(json.loads(line))
  return last
