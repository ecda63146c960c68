"""Cached streams equal full forwards (ED: the window; BC: the whole history).

Every parameter is random (zero-initialised output layers would hide bugs).
The stream is driven through the host API (`cache_update`, `denoise_step`,
`append_block`), the noisy inputs of every step are recorded, and each step's
velocity is recomputed with one forward over the full sequence.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_controls, tiny_setup
from lmdm_jax.diffusion import samplers
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.rope import rope_table
from lmdm_jax.streaming.reference import (bc_history_inputs,
                                          make_sequence_forward,
                                          window_inputs)
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import known_features

TOL = 1e-4


def run_host_stream(spec, params, n_blocks, key, cfg_scale=1.0):
  """Drives a stream step by step; returns context0, records, blocks."""
  g, m = spec.geometry, spec.model
  stream = Stream(spec)
  k_ctx, k_ctl, key = jax.random.split(key, 3)
  context0 = jax.random.normal(k_ctx, (spec.batch, g.context, m.io_channels))
  controls = random_controls(spec, k_ctl, cfg_scale=cfg_scale)
  state = stream.prime(params, context0, controls)
  levels = spec.levels
  records, blocks = [], []
  for b in range(n_blocks):
    state = stream.cache_update(params, state, controls)
    key, kx = jax.random.split(key)
    x = jax.random.normal(kx, (spec.batch, g.block, m.io_channels))
    for i in range(spec.steps):
      state, v_c, v_u = stream.denoise_step(params, state, x, levels[i])
      records.append((b, np.asarray(x), float(levels[i]), np.asarray(v_c),
                      None if v_u is None else np.asarray(v_u)))
      key, ke = jax.random.split(key)
      x, _ = samplers.step(spec.sampler, x, v_c, v_u, levels[i],
                           levels[i + 1], jax.random.normal(ke, x.shape),
                           controls.cfg_scale)
    # Keep the history unit-scale whatever the random model does.
    x = x / jnp.maximum(1.0, jnp.std(x))
    state = stream.append_block(state, x)
    blocks.append(np.asarray(x))
  return context0, controls, records, blocks, stream, state


def test_bc_stream_equals_full_history_forward_300_blocks(tiny_cfg):
  """A stream of 300 blocks, every step of 78 of them checked against one
  forward over the whole history so far (1212 frames at the end: the
  reference's absolute RoPE positions go far past the stream's
  window-relative ones, so float32 rounding is tested where it is
  largest). Each forward pads the history to the next multiple of
  `pad_blocks` blocks, not to all 300: padding frames are invisible to
  every earlier query (`bc_history_inputs`), so the outputs are the
  unpadded forward's (10 compiled lengths instead of 1).

  Checked: the first 12 blocks (the context filling and the cache's first
  wraps), then the first and last three blocks of every 30-block group
  (the most and the least padded reference; three consecutive blocks
  cover every phase of the 3-chunk window), and the last 12. A forward
  costs ~0.17 CPU-s at these lengths, so this keeps the test's ~100
  CPU-seconds of reference forwards to a quarter; the stream itself runs
  every block, so a state error anywhere shows in every later check."""
  spec, params = tiny_setup(tiny_cfg, "bc", steps=2)
  g = spec.geometry
  n_blocks, pad_blocks = 300, 30
  checked = ({b for b in range(n_blocks) if b % pad_blocks < 3
              or b % pad_blocks >= pad_blocks - 3}
             | set(range(12)) | set(range(n_blocks - 12, n_blocks)))
  context0, controls, records, blocks, _, _ = run_host_stream(
      spec, params, n_blocks, jax.random.PRNGKey(3))
  ref = make_sequence_forward(spec, params)
  history = np.concatenate([np.asarray(context0)] + blocks, axis=1)
  worst = 0.0
  cache_inputs = {}
  compared = 0
  for b, x_t, t, v_c, _ in records:
    if b not in checked:
      continue
    n_cur = g.context + (b + 1) * g.block
    n_total = g.context + min(n_blocks, -(-(b + 1) // pad_blocks)
                              * pad_blocks) * g.block
    if b not in cache_inputs:
      cache_inputs[b] = bc_history_inputs(spec, n_cur, n_total)
    mask, table = cache_inputs[b]
    seq = history[:, :n_total].copy()
    seq[:, n_cur - g.block:n_cur] = x_t
    known = np.ones(n_total, np.float32)
    known[n_cur - g.block:n_cur] = 0.0
    out = ref(jnp.asarray(seq), jnp.full((spec.batch,), t), controls,
              jnp.asarray(known), mask, table)
    expect = np.asarray(out[:, n_cur - g.block:n_cur])
    err = np.abs(expect - v_c).max() / max(1.0, np.abs(expect).max())
    worst = max(worst, err)
    compared += 1
    assert err <= TOL, (b, err)
  assert len(records) == n_blocks * spec.steps
  assert compared == len(checked) * spec.steps == 156
  print(f"bc worst relative error over {compared} steps: {worst:.2e}")


@pytest.mark.parametrize("cfg_branch", [False, True])
def test_ed_stream_equals_window_forward(tiny_cfg, cfg_branch):
  spec, params = tiny_setup(tiny_cfg, "ed", steps=3, cfg_branch=cfg_branch)
  g = spec.geometry
  context0, controls, records, blocks, _, _ = run_host_stream(
      spec, params, 12, jax.random.PRNGKey(5), cfg_scale=2.5)
  ref = make_sequence_forward(spec, params)
  history = np.concatenate([np.asarray(context0)] + blocks, axis=1)
  mask, table, known = window_inputs(spec)
  null = controls.replace(cross_tokens=jnp.zeros_like(controls.cross_tokens))
  for b, x_t, t, v_c, v_u in records:
    start = b * g.block
    window = np.concatenate([history[:, start:start + g.context], x_t], 1)
    tt = jnp.full((spec.batch,), t)
    out = ref(jnp.asarray(window), tt, controls, known, mask, table)
    np.testing.assert_allclose(v_c, out[:, g.context:], atol=TOL, rtol=0)
    if cfg_branch:
      out_u = ref(jnp.asarray(window), tt, null, known, mask, table)
      np.testing.assert_allclose(v_u, out_u[:, g.context:], atol=TOL,
                                 rtol=0)


def test_outpaint_step_is_the_full_window_forward(tiny_cfg):
  """The baseline re-processes [re-noised context | target] every step."""
  spec, params = tiny_setup(tiny_cfg, "outpaint", steps=2)
  g = spec.geometry
  stream = Stream(spec)
  key = jax.random.PRNGKey(0)
  ctx = jax.random.normal(key, (spec.batch, g.context,
                                spec.model.io_channels))
  controls = random_controls(spec, key)
  state = stream.prime(params, ctx, controls)
  state = stream.cache_update(params, state, controls)
  x = jax.random.normal(jax.random.PRNGKey(1), (spec.batch, g.block,
                                                spec.model.io_channels))
  _, v_c, _ = stream.denoise_step(params, state, x, 0.0)
  # At t = 0 the re-noised context is the clean context itself.
  table = rope_table(np.concatenate([np.arange(1, g.window + 1), [0]]),
                     spec.model.rotary_dim, spec.model.rope_base)
  window = jnp.concatenate([ctx, x], axis=1)
  # Outpainting has no router: the noisy input is seen on context frames.
  model = DiT(spec.model)
  cond = model.apply({"params": params}, controls.cross_tokens,
                     controls.global_cond, method=DiT.condition)
  known = np.r_[np.ones(g.context), np.zeros(g.block)].astype(np.float32)
  feats = known_features(spec, window) * known[None, :, None]
  out, _ = model.apply({"params": params}, window,
                       jnp.zeros((spec.batch,)), cond, table, table, feats,
                       None, None, None, method=DiT.tokens)
  np.testing.assert_allclose(v_c, out[:, g.context:], atol=TOL, rtol=0)


@pytest.mark.parametrize("mode", ["ed", "bc"])
def test_scan_generation_equals_host_loop(tiny_cfg, mode):
  """`generate` (lax.scan over blocks) == `block` called from the host."""
  spec, params = tiny_setup(tiny_cfg, mode, steps=3, cfg_branch=True,
                            sampler="pingpong")
  g = spec.geometry
  key = jax.random.PRNGKey(7)
  ctx = jax.random.normal(key, (spec.batch, g.context,
                                spec.model.io_channels))
  ctls = [random_controls(spec, jax.random.PRNGKey(10 + i), cfg_scale=1.5,
                          seed=i) for i in range(4)]
  stream = Stream(spec)
  state = stream.prime(params, ctx, ctls[0])
  host = []
  for c in ctls:
    state, x = stream.block(params, state, c)
    host.append(np.asarray(x))
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *ctls)
  state2 = stream.prime(params, ctx, ctls[0])
  _, latents = stream.generate(params, state2, stacked)
  np.testing.assert_allclose(np.concatenate(host, 1), latents, atol=1e-5,
                             rtol=0)


def test_bc_history_measurement(tiny_cfg):
  """Block 0 of a BC stream is its training window exactly; once the window
  has slid, cached history makes the stream differ from a fresh window."""
  from lmdm_jax.bench import history
  spec, params = tiny_setup(tiny_cfg, "bc", steps=2, batch=1)
  r = history.measure(params, spec, blocks=8)
  assert r["block0_rel_l2"] < 1e-5
  assert r["after_window_slid_mean"] > 1e-3
  assert len(r["per_block_rel_l2"]) == 8


@pytest.mark.parametrize("mode", ["ed", "bc"])
def test_query_padding_changes_nothing(tiny_cfg, mode):
  """Masked padding frames (for fast skinny matmuls) leave outputs equal."""
  spec, params = tiny_setup(tiny_cfg, mode, steps=3, batch=1)
  assert spec.query_padding(spec.geometry.block + 1) > 0
  ctx = jax.random.normal(jax.random.PRNGKey(2), (1, spec.geometry.context,
                                                  spec.model.io_channels))
  ctl = random_controls(spec, jax.random.PRNGKey(3))
  outs = []
  for s in (spec, spec.replace(min_query_rows=0)):
    stream = Stream(s)
    state = stream.prime(params, ctx, ctl)
    blocks = []
    for _ in range(4):
      state, x = stream.block(params, state, ctl)
      blocks.append(np.asarray(x))
    outs.append(np.concatenate(blocks, 1))
  np.testing.assert_allclose(outs[0], outs[1], atol=1e-5, rtol=0)
