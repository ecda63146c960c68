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


def generate_block(params, spec: StreamSpec, state: StreamState,
                   controls: Controls):
  """One live block: apply controls, denoise, slide. -> (state, block)."""
  state = st.cache_update(params, spec, state, controls)
  state, x = denoise_block(params, spec, state, controls)
  return st.append_block(spec, state, x), x


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
