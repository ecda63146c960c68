"""Generator rollouts for ARC-Forcing, on the inference stream's own functions.

A rollout primes a stream on a (real, possibly dropped-out) context and
generates R blocks, block b with k_b ping-pong steps. It calls the same
`init_state` / `cache_update` / `first_step` / `later_step` / `append_block`
as live inference, and draws its noise the same way (a function of the
stream's seed and block index), so with fixed k it reproduces the inference
stream exactly.

Gradient truncation (paper Sec. 4; paper code `arc.py`): the first k_b - 1
steps of a block run on `stop_gradient(params)`, the last step runs on the
live parameters and its x0 estimate is the block's output; finished blocks
and the cache enter the next block detached. Parameters therefore receive
gradient only through the last step of each block, and through nothing
earlier. The last step is rematerialised (`jax.checkpoint`) so the memory of
an R-block rollout holds one step's activations at a time, not R.

Shapes: context [B, s, C]; output blocks [B, R * o, C]; steps [R] int32 in
1..k_max (the same on every device: sample them from a replicated key).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lmdm_jax.diffusion import flow, samplers
from lmdm_jax.streaming import steps as st
from lmdm_jax.streaming.sampler import block_key
from lmdm_jax.streaming.state import Controls, StreamSpec

sg = jax.lax.stop_gradient


def dynamic_levels(k, k_max: int):
  """The sampling schedule (logSNR) for a traced step count k: [k_max + 1]
  levels, t_0 = 1, t_i = 0 for i >= k (`flow.LogSNR.traced_levels`)."""
  return flow.SCHEDULES["logsnr"].traced_levels(k, k_max)


def sample_steps(key, blocks: int, k_min: int, k_max: int):
  """k_b ~ U{k_min..k_max} per block (paper: U[2, K_max]; code: 1..5)."""
  return jax.random.randint(key, (blocks,), k_min, k_max + 1)


def rollout(params, spec: StreamSpec, context, controls: Controls, steps,
            k_max: int, return_last_inputs: bool = False):
  """Generates len(steps) blocks; returns (blocks [B, R*o, C], state).

  With `return_last_inputs`, also returns the (detached) inputs of every
  block's last step, stacked on a leading blocks axis: what the gradient
  sees, for tests of the truncation.
  """
  if spec.cfg:
    raise ValueError("rollouts run without CFG (spec.cfg must be False)")
  if spec.sampler != "pingpong":
    raise ValueError("ARC-Forcing rollouts use the ping-pong sampler")
  g, m = spec.geometry, spec.model
  shape = (spec.batch, g.block, m.io_channels)
  frozen = sg(params)
  state = sg(st.init_state(frozen, spec, context, controls))

  def call(p, state, x, t, first):
    return jax.lax.cond(
        first, lambda s: st.first_step(p, spec, s, x, t),
        lambda s: st.later_step(p, spec, s, x, t), state)

  @jax.checkpoint
  def last_step(p, state, x, t, first):
    state, v = call(p, state, x, t, first)
    return state, x - t * v

  def block(state, k):
    state = sg(st.cache_update(frozen, spec, state, controls))
    levels = dynamic_levels(k, k_max)
    key = block_key(state.seed, state.block)
    x = jax.random.normal(jax.random.fold_in(key, 0), shape)

    def free_step(i, carry):
      state, x = carry
      state, v = call(frozen, state, x, levels[i], i == 0)
      eps = jax.random.normal(jax.random.fold_in(key, i + 1), shape)
      x, _ = samplers.step(samplers.PingPong(), x, v, None, levels[i],
                           levels[i + 1], eps)
      return state, x

    state, x = jax.lax.fori_loop(0, k - 1, free_step, (state, x))
    inputs = (sg(state), sg(x), levels[k - 1], k == 1)
    state, x0 = last_step(params, *inputs)
    return (st.append_block(spec, sg(state), sg(x0)),
            (x0, inputs if return_last_inputs else None))

  state, (blocks, last) = jax.lax.scan(block, state,
                                       jnp.asarray(steps, jnp.int32))
  out = jnp.transpose(blocks, (1, 0, 2, 3)).reshape(spec.batch, -1,
                                                    m.io_channels)
  if return_last_inputs:
    return out, state, last
  return out, state


def last_step_output(params, spec: StreamSpec, state, x, t, first):
  """The x0 estimate of a block's last step from explicit inputs."""
  state, v = jax.lax.cond(
      first, lambda s: st.first_step(params, spec, s, x, t),
      lambda s: st.later_step(params, spec, s, x, t), state)
  return x - t * v
