"""Controls through the input-add path: masking, visibility, streaming.

Every parameter is random (the control projections are zero-initialised,
which would hide bugs).
"""
import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_controls
from lmdm_jax.configs import dit_config, geometry
from lmdm_jax.control import inputs as ci
from lmdm_jax.diffusion import samplers
from lmdm_jax.model import masks
from lmdm_jax.model.config import DiTConfig
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.init import init_params, randomize
from lmdm_jax.streaming.reference import (bc_history_inputs,
                                          make_sequence_forward,
                                          window_inputs)
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import StreamSpec, make_controls

TOL = 1e-4
CONTROLS = {"loudness": 1, "cqt_topk": 6, "partner": 8}
_PARAMS = {}


def setup(tiny_cfg, mode="ed", controls=CONTROLS, batch=2, steps=2,
          cfg_branch=False, t_f=0):
  base = dit_config(tiny_cfg)
  c = dataclasses.replace(base, controls=controls)
  if c not in _PARAMS:
    _PARAMS[c] = jax.jit(lambda k1, k2: randomize(
        init_params(c, k1, tiny_cfg.cond_tokens), k2))(
            jax.random.PRNGKey(0), jax.random.PRNGKey(1))
  params = _PARAMS[c]
  spec = StreamSpec(c, geometry(tiny_cfg, mode), batch=batch,
                    cond_tokens=tiny_cfg.cond_tokens, steps=steps,
                    cfg=cfg_branch, partner_visibility=t_f)
  return spec, params


def strip_controls(params):
  return {k: v for k, v in params.items()
          if not k.startswith("to_control_embed_")}


def random_frame_controls(key, dims, batch, frames, p_given=0.7):
  out = {}
  for i, (n, d) in enumerate(dims.items()):
    kv, km = jax.random.split(jax.random.fold_in(key, i))
    v = jax.random.normal(kv, (batch, frames, d))
    m = (jax.random.uniform(km, (batch, frames)) < p_given).astype(
        jnp.float32)
    out[n] = ci.pack(v, m)
  return out


def full_forward(spec, params, x, t, controls, frame_controls, known):
  g = spec.geometry
  mask, table, _ = window_inputs(spec)
  return make_sequence_forward(spec, params)(
      x, t, controls, known, mask, table, frame_controls)


# -- config and parameters ---------------------------------------------------
def test_config_controls_normalised_and_validated():
  c = DiTConfig(controls={"loudness": 1, "cqt_topk": 84})
  assert c.controls == (("loudness", 1), ("cqt_topk", 84))
  assert c == DiTConfig(controls=[["loudness", 1], ["cqt_topk", 84]])
  hash(c)
  assert DiTConfig().controls == ()
  for bad in ({"no-dash": 1}, {"x": 0}, {"x": 1.5}, [("a", 1), ("a", 2)],
              "loudness"):
    with pytest.raises(ValueError):
      DiTConfig(controls=bad)


def test_no_control_model_parameters_unchanged(tiny_cfg):
  base = dit_config(tiny_cfg)
  p0 = jax.eval_shape(lambda: init_params(base, jax.random.PRNGKey(0),
                                           tiny_cfg.cond_tokens))
  assert not any(k.startswith("to_control") for k in p0)
  c = dataclasses.replace(base, controls=CONTROLS)
  p1 = jax.jit(lambda k: init_params(c, k, tiny_cfg.cond_tokens))(
      jax.random.PRNGKey(0))
  extra = sorted(set(p1) - set(p0))
  assert extra == ["to_control_embed_cqt_topk", "to_control_embed_loudness",
                   "to_control_embed_partner"]
  assert p1["to_control_embed_cqt_topk"]["kernel"].shape == (7, 128)
  assert "bias" not in p1["to_control_embed_loudness"]
  # Zero-initialised: a fresh control model plays like its base model.
  assert not np.any(p1["to_control_embed_partner"]["kernel"])
  f0 = flax.traverse_util.flatten_dict(p0)
  f1 = flax.traverse_util.flatten_dict(strip_controls(p1))
  assert f0.keys() == f1.keys()


# -- masking -------------------------------------------------------------------
def test_absent_controls_equal_model_without_controls(tiny_cfg):
  spec, params = setup(tiny_cfg, "bc")
  g, m = spec.geometry, spec.model
  key = jax.random.PRNGKey(2)
  x = jax.random.normal(key, (2, g.window, m.io_channels))
  t = jnp.array([0.3, 0.8])
  cross = jax.random.normal(key, (2, tiny_cfg.cond_tokens, m.cond_token_dim))
  glob = jax.random.normal(key, (2, m.global_cond_dim))
  add = jax.random.normal(key, (2, g.window, m.input_add_dim))
  mask = masks.window_mask("bc", g.window, g.context, g.block,
                           g.window_chunks)
  router = np.r_[np.ones(g.context), np.zeros(g.block)].astype(np.float32)
  base = jax.jit(lambda p: DiT(dit_config(tiny_cfg)).apply(
      {"params": p}, x, t, cross, glob, add, router, mask))(
          strip_controls(params))
  fwd = jax.jit(lambda p, ctl: DiT(m).apply(
      {"params": p}, x, t, cross, glob, add, router, mask, controls=ctl))
  # Absent: left out, empty, all-zero, or any values under a zero mask.
  garbage = random_frame_controls(key, CONTROLS, 2, g.window)
  garbage = {n: a.at[..., -1].set(0.0) for n, a in garbage.items()}
  for controls in (None, ci.all_absent(CONTROLS, 2, g.window), garbage):
    out = fwd(params, controls)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(base))
  # A present control changes the output, on its frames and (through
  # attention) on later ones.
  one = ci.all_absent(CONTROLS, 2, g.window)
  one["loudness"] = one["loudness"].at[:, g.window - 1].set(
      jnp.array([0.5, 1.0]))
  out = fwd(params, one)
  diff = np.abs(np.asarray(out - base)).max(axis=(0, 2))
  assert diff[-1] > 1e-3
  assert np.all(diff[:g.context] == 0)        # bc: context can't see it


def test_bad_controls_raise(tiny_cfg):
  spec, params = setup(tiny_cfg, "ed")
  g, m = spec.geometry, spec.model
  x = jnp.zeros((2, g.window, m.io_channels))
  args = (x, jnp.zeros(2), jnp.zeros((2, tiny_cfg.cond_tokens,
                                      m.cond_token_dim)),
          jnp.zeros((2, m.global_cond_dim)),
          jnp.zeros((2, g.window, m.input_add_dim)))
  model = DiT(m)
  with pytest.raises(ValueError, match="unknown controls.*'melody'"):
    model.apply({"params": params}, *args,
                controls={"melody": jnp.zeros((2, g.window, 2))})
  with pytest.raises(ValueError, match=r"controls\['loudness'\] has shape"):
    model.apply({"params": params}, *args,
                controls={"loudness": jnp.zeros((2, g.window, 1))})
  with pytest.raises(ValueError, match="frame_controls"):
    make_controls(spec, frame_controls={"pitch": jnp.zeros((2, g.window,
                                                             2))})
  with pytest.raises(ValueError, match="frame_controls"):
    make_controls(spec, frame_controls={"loudness": jnp.zeros((2, 3, 2))})
  with pytest.raises(ValueError, match="visibility"):
    StreamSpec(m, geometry(tiny_cfg, "ed"), batch=2,
               cond_tokens=tiny_cfg.cond_tokens, partner_visibility=99)
  with pytest.raises(ValueError, match="mask"):
    ci.pack(np.zeros((5, 2)), np.zeros(4))


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


def test_training_window_uses_the_same_cut(tiny_cfg):
  from lmdm_jax.train import finetune
  spec, params = setup(tiny_cfg, "bc", t_f=-4)
  fspec = finetune.FinetuneSpec(spec.model, spec.geometry,
                                control_dropout=0.0, median_p=0.0,
                                max_partial_chunks=2)
  fspec = dataclasses.replace(fspec, partner_visibility=-4)
  g = spec.geometry
  key = jax.random.PRNGKey(5)
  batch = {"latents": jax.random.normal(key, (2, g.window, 8)),
           "cross_tokens": jnp.ones((2, tiny_cfg.cond_tokens, 24)),
           "global_cond": jnp.ones((2, 16)),
           "control_partner": ci.pack(jax.random.normal(key,
                                                        (2, g.window, 8)))}
  d = jax.vmap(lambda k: finetune.draw(fspec, k))(jax.random.split(key, 2))
  ctl = finetune.window_controls(fspec, batch, d)
  np.testing.assert_array_equal(ctl["partner"][:, g.context - 4:], 0.0)
  np.testing.assert_array_equal(ctl["partner"][:, :g.context - 4],
                                batch["control_partner"][:, :g.context - 4])
  loss = finetune.window_loss(params, fspec, batch, d)
  late = dict(batch)
  late["control_partner"] = batch["control_partner"].at[
      :, g.context - 4:, :-1].add(50.0)
  np.testing.assert_array_equal(
      finetune.window_loss(params, fspec, late, d), loss)
  early = dict(batch)
  early["control_partner"] = batch["control_partner"].at[
      :, g.context - 5, :-1].add(5.0)
  assert np.abs(finetune.window_loss(params, fspec, early, d) -
                loss).max() > 1e-6


# -- streaming contract ---------------------------------------------------------
def test_ed_stream_with_controls_equals_window_forward(tiny_cfg):
  """Controls change every block; the partner is cut at t_f = -2; CFG."""
  spec, params = setup(tiny_cfg, "ed", steps=2, cfg_branch=True, t_f=-2)
  g, m = spec.geometry, spec.model
  key = jax.random.PRNGKey(6)
  stream = Stream(spec)
  ctx = jax.random.normal(key, (spec.batch, g.context, m.io_channels))
  base = random_controls(spec, key, cfg_scale=2.0)
  mask, table, known = window_inputs(spec)
  ref = make_sequence_forward(spec, params)
  history = np.asarray(ctx)
  state = None
  for b in range(4):
    fc = random_frame_controls(jax.random.fold_in(key, b), CONTROLS,
                               spec.batch, g.window)
    controls = base.replace(frame_controls=fc)
    if state is None:
      state = stream.prime(params, ctx, controls)
    state = stream.cache_update(params, state, controls)
    x = jax.random.normal(jax.random.fold_in(key, 100 + b),
                          (spec.batch, g.block, m.io_channels))
    cut = ci.cut_controls(fc, g.context - 2)
    null = controls.replace(
        cross_tokens=jnp.zeros_like(controls.cross_tokens))
    for i in range(spec.steps):
      t = float(spec.levels[i])
      state, v_c, v_u = stream.denoise_step(params, state, x, t)
      window = jnp.concatenate([jnp.asarray(history[:, -g.context:]), x], 1)
      tt = jnp.full((spec.batch,), t)
      want = ref(window, tt, controls, known, mask, table, cut)
      np.testing.assert_allclose(v_c, want[:, g.context:], atol=TOL, rtol=0)
      want_u = ref(window, tt, null, known, mask, table, cut)
      np.testing.assert_allclose(v_u, want_u[:, g.context:], atol=TOL,
                                 rtol=0)
      x, _ = samplers.step(spec.sampler, x, v_c, v_u, spec.levels[i],
                           spec.levels[i + 1], jnp.zeros_like(x), 2.0)
    x = x / jnp.maximum(1.0, jnp.std(x))
    state = stream.append_block(state, x)
    history = np.concatenate([history, np.asarray(x)], axis=1)


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


def test_changing_control_values_does_not_recompile(tiny_cfg):
  spec, params = setup(tiny_cfg, "bc", steps=2, batch=1)
  g = spec.geometry
  stream = Stream(spec)
  key = jax.random.PRNGKey(8)
  controls = make_controls(spec)
  state = stream.prime(params, jnp.zeros((1, g.context, 8)), controls)
  outs = []
  for b in range(4):
    fc = random_frame_controls(jax.random.fold_in(key, b), CONTROLS, 1,
                               g.window, p_given=0.5 * (b % 2))
    state, x = stream.block(params, state,
                            make_controls(spec, frame_controls=fc))
    outs.append(np.asarray(x))
  assert stream._block._cache_size() == 1
  # Absent controls (block 0) vs given ones (block 1) differ.
  assert np.abs(outs[1] - outs[0]).max() > 0
