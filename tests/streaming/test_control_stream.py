"""Controls in the streams: the partner visibility cut by perturbation,
stream == full forward with controls (ED window, BC history), live
session and scan with changing controls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from control_helpers import CONTROLS, random_frame_controls, setup
from helpers import random_controls
from lmdm_jax.model import control_inputs as ci
from lmdm_jax.diffusion import samplers
from lmdm_jax.streaming.reference import (bc_history_inputs,
                                          make_sequence_forward,
                                          window_inputs)
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import make_controls

TOL = 1e-4


# -- visibility ---------------------------------------------------------------
def ed_block_velocity(spec, params, partner, key, stream):
  """One ED stream step of the first block under a given partner."""
  g, m = spec.geometry, spec.model
  k1, k2, k3 = jax.random.split(key, 3)
  ctx = jax.random.normal(k1, (spec.batch, g.context, m.io_channels))
  fc = random_frame_controls(k2, {"loudness": 1}, spec.batch, g.window)
  fc["partner"] = ci.pack(jnp.asarray(partner))
  controls = make_controls(spec, frame_controls=fc)
  state = stream.prime(params, ctx, controls)
  state = stream.cache_update(params, state, controls)
  x = jax.random.normal(k3, (spec.batch, g.block, m.io_channels))
  _, v, _ = stream.denoise_step(params, state, x, 0.6)
  return np.asarray(v)


@pytest.mark.parametrize("t_f", [-3, 0, 2])
def test_partner_visibility_cutoff_by_perturbation(tiny_cfg, t_f):
  spec, params = setup(tiny_cfg, "ed", t_f=t_f)
  g = spec.geometry
  cut = g.context + t_f
  assert spec.partner_cutoff == cut
  key = jax.random.PRNGKey(4)
  partner = np.asarray(jax.random.normal(key, (2, g.window, 8)))
  stream = Stream(spec)
  base = ed_block_velocity(spec, params, partner, key, stream)
  hidden = partner.copy()
  hidden[:, cut:] += 100.0 * np.random.default_rng(0).normal(
      size=hidden[:, cut:].shape)
  np.testing.assert_array_equal(
      ed_block_velocity(spec, params, hidden, key, stream), base)
  visible = partner.copy()
  visible[:, cut - 1] += 3.0
  assert np.abs(ed_block_velocity(spec, params, visible, key, stream) -
                base).max() > 1e-4


# -- streaming contract ---------------------------------------------------------
def window_stream_errors(spec, params, n_blocks=4, t_f=-2):
  """Worst |stream - window forward| per block (conditional and null
  branch) with controls changing every block and the partner cut at t_f."""
  g, m = spec.geometry, spec.model
  key = jax.random.PRNGKey(6)
  stream = Stream(spec)
  ctx = jax.random.normal(key, (spec.batch, g.context, m.io_channels))
  base = random_controls(spec, key, cfg_scale=2.0)
  mask, table, known = window_inputs(spec)
  ref = make_sequence_forward(spec, params)
  history = np.asarray(ctx)
  state, errors = None, []
  for b in range(n_blocks):
    fc = random_frame_controls(jax.random.fold_in(key, b), CONTROLS,
                               spec.batch, g.window)
    controls = base.replace(frame_controls=fc)
    if state is None:
      state = stream.prime(params, ctx, controls)
    state = stream.cache_update(params, state, controls)
    x = jax.random.normal(jax.random.fold_in(key, 100 + b),
                          (spec.batch, g.block, m.io_channels))
    cut = ci.cut_controls(fc, g.context + t_f)
    null = controls.replace(
        cross_tokens=jnp.zeros_like(controls.cross_tokens))
    err = 0.0
    for i in range(spec.steps):
      t = float(spec.levels[i])
      state, v_c, v_u = stream.denoise_step(params, state, x, t)
      window = jnp.concatenate([jnp.asarray(history[:, -g.context:]), x], 1)
      tt = jnp.full((spec.batch,), t)
      want = ref(window, tt, controls, known, mask, table, cut)
      want_u = ref(window, tt, null, known, mask, table, cut)
      err = max(err, float(np.abs(v_c - want[:, g.context:]).max()),
                float(np.abs(v_u - want_u[:, g.context:]).max()))
      x, _ = samplers.step(spec.sampler, x, v_c, v_u, spec.levels[i],
                           spec.levels[i + 1], jnp.zeros_like(x), 2.0)
    x = x / jnp.maximum(1.0, jnp.std(x))
    state = stream.append_block(state, x)
    history = np.concatenate([history, np.asarray(x)], axis=1)
    errors.append(err)
  return errors


def test_ed_stream_with_controls_equals_window_forward(tiny_cfg):
  """Controls change every block; the partner is cut at t_f = -2; CFG."""
  spec, params = setup(tiny_cfg, "ed", steps=2, cfg_branch=True, t_f=-2)
  assert max(window_stream_errors(spec, params)) <= TOL


def test_bc_stream_reencodes_when_the_partner_lags(tiny_cfg):
  """BC with the partner cut at t_f < 0: chunks are encoded before their
  partner frames are visible, so the stream re-encodes its context every
  block and equals the training window's forward; without re-encoding it
  does not (the chunks would never see their partner)."""
  spec, params = setup(tiny_cfg, "bc", steps=2, cfg_branch=True, t_f=-2)
  assert spec.reencodes_context
  assert not spec.replace(partner_visibility=0).reencodes_context
  assert not spec.replace(bc_reencode=False).reencodes_context
  assert max(window_stream_errors(spec, params)) <= TOL
  stale = window_stream_errors(spec.replace(bc_reencode=False), params)
  assert stale[0] <= TOL                       # the prime saw the same cut
  assert max(stale[1:]) > 1e-3


def test_bc_stream_with_controls_equals_full_history_forward(tiny_cfg):
  """Control curves over absolute time; each block gets its sliding window
  of them (the partner fully visible: t_f = block)."""
  spec, params = setup(tiny_cfg, "bc", steps=2, t_f=4)
  g, m = spec.geometry, spec.model
  n_blocks = 8
  n_total = g.context + n_blocks * g.block
  key = jax.random.PRNGKey(7)
  curves = random_frame_controls(key, CONTROLS, spec.batch, n_total)
  stream = Stream(spec)
  ctx = jax.random.normal(key, (spec.batch, g.context, m.io_channels))
  base = random_controls(spec, key)
  ref = make_sequence_forward(spec, params)
  history = np.asarray(ctx)
  state = None
  for b in range(n_blocks):
    start = b * g.block
    fc = {n: a[:, start:start + g.window] for n, a in curves.items()}
    controls = base.replace(frame_controls=fc)
    if state is None:
      state = stream.prime(params, ctx, controls)
    state = stream.cache_update(params, state, controls)
    x = jax.random.normal(jax.random.fold_in(key, 100 + b),
                          (spec.batch, g.block, m.io_channels))
    n_cur = g.context + (b + 1) * g.block
    hmask, htable = bc_history_inputs(spec, n_cur, n_total)
    for i in range(spec.steps):
      t = float(spec.levels[i])
      state, v_c, _ = stream.denoise_step(params, state, x, t)
      seq = np.zeros((spec.batch, n_total, m.io_channels), np.float32)
      seq[:, :n_cur - g.block] = history
      seq[:, n_cur - g.block:n_cur] = np.asarray(x)
      known = np.ones(n_total, np.float32)
      known[n_cur - g.block:] = 0.0
      want = ref(jnp.asarray(seq), jnp.full((spec.batch,), t), controls,
                 jnp.asarray(known), hmask, htable, curves)
      np.testing.assert_allclose(v_c, want[:, n_cur - g.block:n_cur],
                                 atol=TOL, rtol=0)
      x, _ = samplers.step(spec.sampler, x, v_c, None, spec.levels[i],
                           spec.levels[i + 1], jnp.zeros_like(x), 1.0)
    x = x / jnp.maximum(1.0, jnp.std(x))
    state = stream.append_block(state, x)
    history = np.concatenate([history, np.asarray(x)], axis=1)


def test_live_session_changes_control_curves_without_recompiling(
    tiny_cfg, tmp_path):
  from lmdm_jax.live.session import LiveSession
  spec, params = setup(tiny_cfg, "bc", steps=2, batch=1)
  g = spec.geometry
  enc = lambda text: np.ones((spec.cond_tokens, 24), np.float32)
  s = LiveSession(params, spec, enc, seed=1)
  compiled = s.streams[2]._block._cache_size()
  key = jax.random.PRNGKey(8)
  outs = [s.next_block()]                            # all absent
  for b in range(3):
    fc = random_frame_controls(jax.random.fold_in(key, b), CONTROLS, 1,
                               g.window, p_given=0.5)
    s.set_frame_controls({n: a[0] for n, a in fc.items()})   # [T, dim+1]
    outs.append(s.next_block())
  s.set_frame_controls({"loudness": fc["loudness"]})  # others absent
  outs.append(s.next_block())
  assert s.streams[2]._block._cache_size() == compiled
  assert s.log[-1]["frame_controls"] == ["loudness"]
  # Restore continues exactly, controls included.
  s.save(str(tmp_path / "s.npz"))
  want = s.next_block()
  s2 = LiveSession(params, spec, enc, seed=1)
  s2.load(str(tmp_path / "s.npz"))
  np.testing.assert_array_equal(s2.next_block(), want)
  with pytest.raises(ValueError, match="unknown frame_controls"):
    s.set_frame_controls({"timbre": np.zeros((g.window, 2))})
  with pytest.raises(ValueError, match="frame_controls"):
    s.set_frame_controls({"loudness": np.zeros((g.window - 1, 2))})


def test_scan_generation_with_controls_equals_host_loop(tiny_cfg):
  spec, params = setup(tiny_cfg, "ed", steps=2, batch=1, t_f=-2)
  g = spec.geometry
  key = jax.random.PRNGKey(9)
  per_block = [make_controls(spec, frame_controls=random_frame_controls(
      jax.random.fold_in(key, b), CONTROLS, 1, g.window), seed=b)
      for b in range(2)]
  stream = Stream(spec)
  ctx = jax.random.normal(key, (1, g.context, 8))
  state = stream.prime(params, ctx, per_block[0])
  host = []
  for c in per_block:
    state, x = stream.block(params, state, c)
    host.append(np.asarray(x))
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *per_block)
  state = stream.prime(params, ctx, per_block[0])
  _, lat = stream.generate(params, state, stacked)
  np.testing.assert_allclose(lat, np.concatenate(host, 1), atol=1e-5)
