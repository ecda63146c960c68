"""Block samplers: K denoising steps per block, and `lax.scan` over blocks.

`generate_block` is one block of live streaming (conditioning -> K steps ->
slide the clean block into the context); `generate` scans it over a sequence
of per-block controls for offline generation. Inside a block the first step
is unrolled (bc: the fused cache-writing step) and the remaining K-1 steps
are a `lax.scan`.

`Stream` wraps the pure functions in `jax.jit` with the state donated, for a
host loop that changes controls between blocks (nothing recompiles: controls
are arrays of fixed shape).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lmdm_jax.diffusion import samplers
from lmdm_jax.streaming import steps as st
from lmdm_jax.streaming.state import (Controls, StreamSpec, StreamState,
                                      check_controls, check_latents)


def block_key(seed, block):
  return jax.random.fold_in(jax.random.PRNGKey(seed), block)


def _update(spec: StreamSpec, controls: Controls, x, out, t, t_next, eps):
  v_c, v_u = st.split_branches(spec, out)
  return samplers.step(samplers.get(spec.sampler), x, v_c, v_u, t, t_next, eps,
                       controls.cfg_scale, controls.rescale, spec.plus_plus)


def denoise_block(params, spec: StreamSpec, state: StreamState,
                  controls: Controls):
  """Runs the K steps of one block; returns (state, clean block [B,o,C])."""
  g, m = spec.geometry, spec.model
  levels = jnp.asarray(spec.levels)
  key = block_key(state.seed, state.block)
  shape = (spec.batch, g.block, m.io_channels)
  x = jax.random.normal(jax.random.fold_in(key, 0), shape)

  def eps(i):
    return jax.random.normal(jax.random.fold_in(key, i + 1), shape)

  state, out = st.first_step(params, spec, state, x, levels[0])
  x, _ = _update(spec, controls, x, out, levels[0], levels[1], eps(0))

  def body(carry, i):
    state, x = carry
    state, out = st.later_step(params, spec, state, x, levels[i])
    x, _ = _update(spec, controls, x, out, levels[i], levels[i + 1], eps(i))
    return (state, x), None

  if spec.steps > 1:
    (state, x), _ = jax.lax.scan(body, (state, x),
                                 jnp.arange(1, spec.steps))
  return state, x


def block_ok(spec: StreamSpec, x) -> jnp.ndarray:
  """[B] bool: each voice's block [B, o, C] is finite and within
  `spec.latent_limit` (what a working model makes)."""
  bad = ~jnp.isfinite(x) | (jnp.abs(x) > spec.latent_limit)
  return ~jnp.any(bad, axis=(1, 2))


def guard_block(spec: StreamSpec, before: StreamState, after: StreamState,
                x):
  """Keeps a non-finite block out of the stream. -> (state, block).

  before: the state the block started from; after: the state with the block
  slid in; x [B, o, C] the block. A voice whose block fails `block_ok`
  keeps `before`'s context and cache (so nothing NaN is ever attended to
  again and the stream recovers as soon as the cause is gone) and outputs
  its previous block (the newest context chunk) instead. Why the previous
  block: it is audio this model made at this level and timbre, so the
  listener hears a one-block stutter; zero latents decode to whatever the
  codec maps its mean to (a hiss for the mel codec), and zero audio is the
  dropout the player must never produce. The block counter still advances
  (the next block draws fresh noise) and `rejected` counts the block, so
  the host reports it. Selects, not branches: one program, no recompile.
  """
  ok = block_ok(spec, x)                                  # [B]
  o = spec.geometry.block
  safe = before.context[:, -o:]
  x = jnp.where(ok[:, None, None], x, safe)
  ok_star = jnp.concatenate([ok] * spec.branches) if spec.cfg else ok

  def pick(new, old, keep, batch_axis):
    shape = [1] * new.ndim
    shape[batch_axis] = -1
    return jnp.where(keep.reshape(shape), new, old)

  # kv [depth, B*, ...] (branches stacked on B*), context [B, s, C].
  kv = jax.tree.map(lambda n, b: pick(n, b, ok_star, 1), after.kv,
                    before.kv)
  context = pick(after.context, before.context, ok, 0)
  rejected = before.rejected + jnp.any(~ok).astype(jnp.int32)
  return after.replace(context=context, kv=kv, rejected=rejected), x


def generate_block(params, spec: StreamSpec, state: StreamState,
                   controls: Controls):
  """One live block: apply controls, denoise, slide. -> (state, block).

  A block that comes out non-finite is replaced and kept out of the
  context and cache (`guard_block`; counted in `state.rejected`).
  """
  before = state
  state = st.cache_update(params, spec, state, controls)
  state, x = denoise_block(params, spec, state, controls)
  return guard_block(spec, before, st.append_block(spec, state, x), x)


def generate(params, spec: StreamSpec, state: StreamState,
             controls: Controls):
  """Offline: scan `generate_block` over controls stacked on a leading
  blocks axis. Returns (state, latents [B, blocks * o, C])."""
  def body(s, c):
    return generate_block(params, spec, s, c)
  state, blocks = jax.lax.scan(body, state, controls)   # [n, B, o, C]
  latents = jnp.transpose(blocks, (1, 0, 2, 3))
  return state, latents.reshape(spec.batch, -1, blocks.shape[-1])


class Stream:
  """Jitted, state-donating entry points of a stream with a fixed spec.

  Each function compiles on first use and never again for this spec
  (controls are arrays of fixed shape). The donated state must not be used
  after a call: use the returned one.
  """

  def __init__(self, spec: StreamSpec):
    self.spec = spec

    def init_state(params, context, controls):
      return st.init_state(params, spec, context, controls)

    def cache_update(params, state, controls):
      return st.cache_update(params, spec, state, controls)

    def denoise_step(params, state, x_t, t):
      return st.denoise_step(params, spec, state, x_t, t)

    def append_block(state, clean):
      return st.append_block(spec, state, clean)

    def block(params, state, controls):
      return generate_block(params, spec, state, controls)

    def offline(params, state, controls):
      return generate(params, spec, state, controls)

    self._init_state = jax.jit(init_state)
    self.cache_update = jax.jit(cache_update, donate_argnums=(1,))
    self.denoise_step = jax.jit(denoise_step, donate_argnums=(1,))
    self.append_block = jax.jit(append_block, donate_argnums=(0,))
    self._block = jax.jit(block, donate_argnums=(1,))
    self._generate = jax.jit(offline, donate_argnums=(1,))

  def prime(self, params, context, controls: Controls) -> StreamState:
    """A new stream state from context latents [B, s, C]."""
    check_latents(self.spec, context, self.spec.geometry.context, "context")
    check_controls(self.spec, controls)
    return self._init_state(params, context, controls)

  def block(self, params, state: StreamState, controls: Controls):
    """One block under `controls`: -> (state, latents [B, o, C])."""
    check_controls(self.spec, controls)
    return self._block(params, state, controls)

  def generate(self, params, state: StreamState, controls: Controls):
    """Offline scan; controls' leaves carry a leading blocks axis."""
    return self._generate(params, state, controls)
