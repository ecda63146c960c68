"""Data-parallel training step: written once per device, run on any mesh.

The step is a per-device function of (replicated state, local batch shard)
wrapped in `jax.shard_map` over a one-axis mesh ("data",) and jitted. Each
device computes gradients on its examples, `lax.pmean(grads, "data")`
averages them, and every device applies the same optax update, so the state
stays replicated. The same code runs on 1 device, 8 simulated CPU devices or
a multi-host pod slice (the mesh then spans all processes' devices and each
process feeds only its own shard of the batch).

Why the explicit `lax.pcast(params, to="varying")`: under shard_map's
varying-manual-axes typing, differentiating a device-varying loss with
respect to replicated (invariant) parameters transposes the implicit
broadcast into a psum, i.e. the gradient would already be *summed* over
devices. Casting the parameters to varying first gives each device its own
local gradient, which `pmean` then averages: the mean over the global batch.

Randomness is per example: example i of the global batch uses
fold_in(fold_in(rng, step), i), so any device count (and any gradient
accumulation split) sees identical noise, levels and dropouts.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lmdm_jax.train.state import TrainState

AXIS = "data"


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """One-axis ("data",) mesh over `devices` (default: all, every process)."""
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("make_mesh needs at least one device")
  return Mesh(np.array(devices), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put_replicated(tree, mesh: Mesh):
  """Host values identical on every process -> replicated global arrays."""
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding,
                                                       np.asarray(x)), tree)


def put_batch(batch: dict, mesh: Mesh) -> dict:
  """This process's rows [B_local, ...] -> global arrays sharded on data."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def microbatches(tree, accum_steps: int):
  """Splits every leaf's leading (local batch) axis into [accum_steps, b/a]."""
  local_b = jax.tree.leaves(tree)[0].shape[0]
  if local_b % accum_steps:
    raise ValueError(f"per-device batch {local_b} is not a multiple of "
                     f"accum_steps {accum_steps}")
  return jax.tree.map(
      lambda x: x.reshape(accum_steps, local_b // accum_steps, *x.shape[1:]),
      tree)


def accumulated_grads(value_and_grad, params, micro, accum_steps: int):
  """Mean gradient and mean values over microbatches, averaged over devices.

  Runs inside shard_map. value_and_grad(params, *microbatch) -> (values,
  grads), values any pytree of arrays (a loss, a metrics dict); `micro` is a
  tuple of pytrees with a leading [accum_steps] axis (`microbatches`). One
  microbatch's activations are live at a time (`lax.scan`); the sums are
  divided by accum_steps and `pmean`ed over the data axis. Used by stage 1
  and by both ARC-Forcing players, so they accumulate identically.
  """
  first = jax.tree.map(lambda x: x[0], micro)
  v_shape = jax.eval_shape(value_and_grad, params, *first)[0]
  v0 = jax.tree.map(lambda s: jax.lax.pcast(jnp.zeros(s.shape, s.dtype),
                                            AXIS, to="varying"), v_shape)

  def body(carry, mb):
    g_sum, v_sum = carry
    v, g = value_and_grad(params, *mb)
    return (jax.tree.map(jnp.add, g_sum, g),
            jax.tree.map(jnp.add, v_sum, v)), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  (g_sum, v_sum), _ = jax.lax.scan(body, (zeros, v0), micro)
  mean = lambda t: jax.lax.pmean(  # noqa: E731
      jax.tree.map(lambda x: x / accum_steps, t), AXIS)
  return mean(g_sum), mean(v_sum)


def make_train_step(spec,
                    tx: optax.GradientTransformation, mesh: Mesh,
                    accum_steps: int = 1, ema_decay: float = 0.0,
                    schedule=None):
  """Returns jitted step(state, batch) -> (state, metrics).

  Args:
    spec: the objective's spec (`lmdm_jax.train.objective`): its
      `loss(params, batch, keys)` -> (loss [], per-example losses [B]).
    tx: the optimizer.
    mesh: ("data",) mesh; the global batch must divide by its size times
      accum_steps.
    accum_steps: microbatches per device per update (gradient accumulation;
      gradients are averaged, so the update equals one big batch's).
    ema_decay: EMA of the parameters when > 0 (state.ema_params must be set).
    schedule: step -> learning rate, reported in the metrics.

  The state is donated. Metrics (replicated scalars): loss, grad_norm, lr.
  """
  if accum_steps < 1:
    raise ValueError(f"accum_steps must be >= 1, got {accum_steps}")
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")

  def per_device(state: TrainState, batch: dict):
    local_b = batch["latents"].shape[0]
    ids = jax.lax.axis_index(AXIS) * local_b + jnp.arange(local_b)
    step_key = jax.random.fold_in(state.rng, state.step)
    keys = jax.vmap(lambda i: jax.random.fold_in(step_key, i))(ids)
    params = jax.lax.pcast(state.params, AXIS, to="varying")
    micro = microbatches((batch, keys), accum_steps)
    grad_fn = jax.value_and_grad(lambda p, b, k: spec.loss(p, b, k)[0])
    grads, loss = accumulated_grads(grad_fn, params, micro, accum_steps)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if ema_decay > 0:
      ema = jax.tree.map(lambda e, p: ema_decay * e + (1 - ema_decay) * p,
                         ema, new_params)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    if schedule is not None:
      metrics["lr"] = jnp.asarray(schedule(state.step), jnp.float32)
    new_state = state.replace(step=state.step + 1, params=new_params,
                              opt_state=opt_state, ema_params=ema)
    return new_state, metrics

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS)),
                       out_specs=(P(), P()))
  return jax.jit(step, donate_argnums=(0,))
