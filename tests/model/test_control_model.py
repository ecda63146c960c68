"""Controls through the input-add path: configuration, parameters, masking
(absent == no controls, bit for bit), bad input, the training window's
partner cut."""
import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from control_helpers import (CONTROLS, random_frame_controls, setup,
                             strip_controls)
from lmdm_jax.configs import dit_config, geometry
from lmdm_jax.model import control_inputs as ci
from lmdm_jax.model import masks
from lmdm_jax.model.config import DiTConfig
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.init import init_params
from lmdm_jax.streaming.state import StreamSpec, make_controls

TOL = 1e-4


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
  for controls in (ci.all_absent(CONTROLS, 2, g.window), garbage):
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
  window_loss = jax.jit(lambda b: finetune.window_loss(params, fspec, b, d))
  loss = window_loss(batch)
  late = dict(batch)
  late["control_partner"] = batch["control_partner"].at[
      :, g.context - 4:, :-1].add(50.0)
  np.testing.assert_array_equal(window_loss(late), loss)
  early = dict(batch)
  early["control_partner"] = batch["control_partner"].at[
      :, g.context - 5, :-1].add(5.0)
  assert np.abs(window_loss(early) - loss).max() > 1e-6


def test_training_draws_the_visibility_per_example(tiny_cfg):
  """partner_visibilities: each example's cut is one of the given t_f, and
  it is exactly `partner_cut` at that t_f (the rule streaming uses)."""
  from lmdm_jax.train import finetune
  spec, _ = setup(tiny_cfg, "bc", t_f=0)
  g = spec.geometry
  choices = (-4, 0, g.block)
  fspec = finetune.FinetuneSpec(spec.model, g, control_dropout=0.0,
                                median_p=0.0, max_partial_chunks=2,
                                partner_visibilities=list(choices))
  assert fspec.partner_visibilities == choices       # hashable
  n = 24
  key = jax.random.PRNGKey(3)
  partner = ci.pack(jax.random.normal(key, (n, g.window, 8)))
  batch = {"control_partner": partner}
  d = jax.vmap(lambda k: finetune.draw(fspec, k))(jax.random.split(key, n))
  cut = np.asarray(d["partner_cutoff"]) - g.context
  assert set(cut.tolist()) == set(choices)           # all drawn, nothing else
  ctl = finetune.window_controls(fspec, batch, d)
  for b in range(n):
    want = ci.partner_cut(partner[b:b + 1], g.context + int(cut[b]))
    np.testing.assert_array_equal(ctl["partner"][b:b + 1], want)
  with pytest.raises(ValueError, match="visibility"):
    finetune.FinetuneSpec(spec.model, g, max_partial_chunks=2,
                          partner_visibilities=(g.block + 1,))
