"""Live-stream properties: no retracing, bounded state, clear errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_controls, tiny_setup
from lmdm_jax.diffusion import flow, samplers
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import (StreamSpec, make_controls,
                                      state_bytes)


@pytest.mark.parametrize("mode", ["outpaint", "ed", "bc"])
def test_no_retrace_when_controls_change_every_block(tiny_cfg, mode):
  spec, params = tiny_setup(tiny_cfg, mode, steps=2, cfg_branch=True)
  g = spec.geometry
  stream = Stream(spec)
  ctx = jnp.zeros((spec.batch, g.context, spec.model.io_channels))
  state = stream.prime(params, ctx, random_controls(spec,
                                                    jax.random.PRNGKey(0)))
  outs = []
  for b in range(50):
    ctl = random_controls(spec, jax.random.PRNGKey(b), cfg_scale=1.0 + b / 10,
                          seed=b)
    state, x = stream.block(params, state, ctl)
    outs.append(x)
  assert stream._block._cache_size() == 1
  # The host-driven per-step API too.
  for b in range(5):
    ctl = random_controls(spec, jax.random.PRNGKey(100 + b), cfg_scale=2.0,
                          seed=b)
    state = stream.cache_update(params, state, ctl)
    x = outs[b]
    for i in range(spec.steps):
      state, v_c, _ = stream.denoise_step(params, state, x, spec.levels[i])
    state = stream.append_block(state, x)
  for fn in (stream.cache_update, stream.denoise_step, stream.append_block,
             stream._init_state):
    assert fn._cache_size() == 1
  assert int(state.block) == 55
  assert not np.allclose(outs[0], outs[1])


@pytest.mark.parametrize("mode", ["ed", "bc"])
def test_state_size_is_bounded(tiny_cfg, mode):
  spec, params = tiny_setup(tiny_cfg, mode, steps=1, batch=1)
  g = spec.geometry
  stream = Stream(spec)
  ctl = random_controls(spec, jax.random.PRNGKey(0))
  state = stream.prime(params, jnp.zeros((1, g.context,
                                          spec.model.io_channels)), ctl)
  state, _ = stream.block(params, state, ctl)
  one = state_bytes(state)
  shapes_one = jax.tree.map(lambda a: a.shape, state)
  stacked = jax.tree.map(lambda a: jnp.stack([a] * 999), ctl)
  state, latents = stream.generate(params, state, stacked)
  assert int(state.block) == 1000
  assert state_bytes(state) == one
  assert jax.tree.map(lambda a: a.shape, state) == shapes_one
  assert np.isfinite(np.asarray(latents)).all()


def test_bad_inputs_raise_clear_errors(tiny_cfg):
  spec, params = tiny_setup(tiny_cfg, "bc")
  g, c = spec.geometry, spec.model
  stream = Stream(spec)
  ctl = random_controls(spec, jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match=r"expected \(2, 12, 8\)"):
    stream.prime(params, jnp.zeros((2, g.context, c.io_channels + 1)), ctl)
  with pytest.raises(ValueError, match=r"context has shape"):
    stream.prime(params, jnp.zeros((2, g.context - 1, c.io_channels)), ctl)
  with pytest.raises(ValueError, match=r"cross_tokens has shape .* expected "
                     r"\(2, 5, 24\)"):
    make_controls(spec, jnp.zeros((2, 7, c.cond_token_dim)))
  with pytest.raises(ValueError, match=r"global_cond has shape"):
    make_controls(spec, None, jnp.zeros((2, 3)))
  state = stream.prime(params, jnp.zeros((2, g.context, c.io_channels)), ctl)
  with pytest.raises(ValueError, match=r"x_t has shape"):
    stream.denoise_step(params, state, jnp.zeros((2, g.block + 1,
                                                  c.io_channels)), 1.0)
  with pytest.raises(ValueError, match="plus_plus"):
    StreamSpec(c, g, plus_plus=True)
  with pytest.raises(ValueError, match="sampler"):
    StreamSpec(c, g, sampler="ddim")


def test_schedule_matches_paper():
  t = flow.logsnr_schedule(6)
  np.testing.assert_allclose(
      t, [1, .9907, .9656, .8808, .6608, .3392, 0], atol=1e-4)
  with pytest.raises(ValueError):
    flow.logsnr_schedule(0)


@pytest.mark.parametrize("kind", ["euler", "pingpong"])
def test_samplers_recover_a_point_mass(kind):
  """With the exact velocity of a one-point data set, any schedule lands on
  the point; guidance between identical branches changes nothing."""
  x0 = jnp.linspace(-1, 1, 24).reshape(1, 3, 8)
  levels = flow.logsnr_schedule(5)
  key = jax.random.PRNGKey(0)
  x = jax.random.normal(key, x0.shape)
  for i in range(5):
    t, tn = levels[i], levels[i + 1]
    v = (x - x0) / t                      # eps - x0 with eps = (x - (1-t)x0)/t
    eps = jax.random.normal(jax.random.fold_in(key, i), x.shape)
    x, est = samplers.step(kind, x, v, v, t, tn, eps, scale=3.0)
    np.testing.assert_allclose(est, x0, atol=1e-5)
  np.testing.assert_allclose(x, x0, atol=1e-5)


def test_cfg_plus_plus_formulas():
  x = jnp.ones((1, 2, 4))
  v_c, v_u = 2 * x, 0.5 * x
  eps = 3 * x
  t, tn, w = 0.8, 0.3, 0.7
  x0_c, x0_u = x - t * v_c, x - t * v_u
  x0_g = x0_u + w * (x0_c - x0_u)
  out, _ = samplers.step("pingpong", x, v_c, v_u, t, tn, eps, w,
                         plus_plus=True)
  np.testing.assert_allclose(out, x0_g + tn * (eps - x0_u), rtol=1e-6)
  out, _ = samplers.step("euler", x, v_c, v_u, t, tn, None, w,
                         plus_plus=True)
  np.testing.assert_allclose(out, x0_g + tn * v_u, rtol=1e-6)
  # Rescale phi = 1 matches the conditional per-frame std over channels.
  v_c = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 8))
  v = samplers.cfg_velocity(v_c, 0.2 * v_c[:, ::-1], 5.0, 1.0)
  np.testing.assert_allclose(jnp.std(v, -1, ddof=1), jnp.std(v_c, -1, ddof=1),
                             rtol=1e-5)


def test_bfloat16_compute_tracks_float32(tiny_cfg):
  """bf16 compute (f32 params, f32 attention logits and norms) stays close
  to the f32 stream: same compiled structure, lower precision only."""
  import dataclasses
  spec, params = tiny_setup(tiny_cfg, "bc", steps=2, batch=1)
  spec16 = spec.replace(model=dataclasses.replace(spec.model,
                                                  dtype="bfloat16"))
  ctl = random_controls(spec, jax.random.PRNGKey(0))
  ctx = jax.random.normal(jax.random.PRNGKey(1),
                          (1, spec.geometry.context, spec.model.io_channels))
  outs = []
  for s in (spec, spec16):
    stream = Stream(s)
    state = stream.prime(params, ctx, ctl)
    state, x = stream.block(params, state, ctl)
    outs.append(np.asarray(x, np.float32))
  assert np.isfinite(outs[1]).all()
  rel = np.linalg.norm(outs[1] - outs[0]) / np.linalg.norm(outs[0])
  assert rel < 0.05, rel
