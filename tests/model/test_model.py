"""Model structure, masks, causality and the context router."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from helpers import random_controls, tiny_setup
from lmdm_jax.configs import dit_config, load_config
from lmdm_jax.model import masks
from lmdm_jax.model.config import DiTConfig, Geometry
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.init import count_params, param_shapes
from lmdm_jax.model.rope import rope_table
from lmdm_jax.streaming.state import known_features


def sao_dit_param_count(d, depth, cond, glob, io, add, head, ff=4, tf=256,
                        project_cond=True):
  """Parameter count of stable-audio-tools' DiT (qk_norm=ln) from its
  torch shapes."""
  dx = d if project_cond else cond
  per_layer = (
      d                                   # pre_norm.gamma
      + 3 * d * d + d * d                 # self_attn.to_qkv, to_out
      + 2 * (2 * head)                    # self_attn q_norm, k_norm (w, b)
      + d                                 # cross_attend_norm.gamma
      + d * d + dx * 2 * dx + d * d       # cross_attn to_q, to_kv, to_out
      + 2 * (2 * head)                    # cross_attn q_norm, k_norm
      + d                                 # ff_norm.gamma
      + d * 2 * ff * d + 2 * ff * d       # ff.ff.0.proj (w, b)
      + ff * d * d + d)                   # ff.ff.2 (w, b)
  top = (tf // 2                          # timestep_features.weight
         + tf * d + d + d * d + d         # to_timestep_embed
         + cond * dx + dx * dx            # to_cond_embed
         + glob * d + d * d               # to_global_embed
         + add * d                        # to_input_add_embed
         + 2 * io * io                    # pre/postprocess_conv
         + io * d + d * io)               # project_in/out
  return depth * per_layer + top


def test_sao_small_parameter_count_matches_reference():
  cfg = load_config(os.path.join(ROOT, "configs", "sao_small.py"))
  n = count_params(param_shapes(dit_config(cfg), cfg.cond_tokens))
  ref = sao_dit_param_count(1024, 16, 768, 768, 64, 65, head=128)
  assert n == ref, (n, ref)
  assert abs(n - 341e6) / 341e6 < 0.005, n


def test_sao_1_0_shapes_by_eval_shape():
  cfg = load_config(os.path.join(ROOT, "configs", "sao.py"))
  c = dit_config(cfg)
  shapes = param_shapes(c, cfg.cond_tokens)
  assert c.cross_kv_heads == 12 and c.num_heads == 24
  kv = shapes["transformer"]["layers_0"]["cross_attn"]["to_kv"]["kernel"]
  assert kv.shape == (768, 1536)
  n = count_params(shapes)
  assert abs(n - 1.057e9) / 1.057e9 < 0.005, n


def test_parameter_names_mirror_stable_audio_tools(tiny_cfg):
  shapes = param_shapes(dit_config(tiny_cfg), tiny_cfg.cond_tokens)
  flat = {"/".join(str(p.key) for p in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(shapes)[0]}
  for name in [
      "timestep_features/weight", "to_timestep_embed_0/kernel",
      "to_timestep_embed_2/bias", "to_cond_embed_0/kernel",
      "to_global_embed_2/kernel", "to_input_add_embed/kernel",
      "preprocess_conv/kernel", "postprocess_conv/kernel",
      "transformer/project_in/kernel", "transformer/project_out/kernel",
      "transformer/layers_1/pre_norm/gamma",
      "transformer/layers_1/self_attn/to_qkv/kernel",
      "transformer/layers_1/self_attn/q_norm/norm/scale",
      "transformer/layers_1/cross_attn/to_kv/kernel",
      "transformer/layers_1/ff/proj/bias", "transformer/layers_1/ff/out/bias",
  ]:
    assert name in flat, name
  assert not any("bias" in n and ("to_qkv" in n or "project_in" in n)
                 for n in flat)


def test_bc_mask_matches_paper_code():
  """q_blk = min(q // 48, 4); allowed iff q_blk - 3 <= kv_blk <= q_blk."""
  m = masks.bc_mask(240, 48, 4)
  q = np.minimum(np.arange(241) // 48, 4)
  kv = np.minimum(np.arange(241) // 48, 4)
  expect = (kv[None] <= q[:, None]) & (kv[None] >= q[:, None] - 3)
  np.testing.assert_array_equal(m, expect)
  ed = masks.ed_mask(240, 192)
  assert ed[:192, 192:].sum() == 0 and ed[192:].all()


def _full_forward(spec, params, x, t, known, mask, positions, exit_layer=None,
                  clean=None):
  """Forward with input-add features of `clean` (default x) on known frames
  and the router zeroing the noisy input `x` there."""
  model = DiT(spec.model)
  ctl = random_controls(spec, jax.random.PRNGKey(9))
  cond = model.apply({"params": params}, ctl.cross_tokens, ctl.global_cond,
                     method=DiT.condition)
  table = rope_table(positions, spec.model.rotary_dim, spec.model.rope_base)
  feats = known_features(spec, x if clean is None else clean)
  feats = feats * known[None, :, None]
  out, _ = model.apply({"params": params}, x, t, cond, table, table, feats,
                       1.0 - known, None, mask, exit_layer,
                       method=DiT.tokens)
  return np.asarray(out)


def test_bc_causality(tiny_cfg):
  """Changing any frame after block b changes nothing at or before b."""
  spec, params = tiny_setup(tiny_cfg, "bc")
  o, n = spec.geometry.block, 40
  key = jax.random.PRNGKey(0)
  x = jax.random.normal(key, (2, n, spec.model.io_channels))
  known = jnp.ones((n,))
  mask = masks.bc_mask(n, o, spec.geometry.window_chunks)
  pos = np.r_[np.arange(1, n + 1), 0]
  base = _full_forward(spec, params, x, jnp.full((2,), .5), known, mask, pos)
  for b in range(n // o - 1):
    cut = (b + 1) * o
    x2 = x.at[:, cut:].add(jax.random.normal(jax.random.PRNGKey(b),
                                             x[:, cut:].shape))
    out = _full_forward(spec, params, x2, jnp.full((2,), .5), known, mask,
                        pos)
    np.testing.assert_array_equal(out[:, :cut], base[:, :cut])
    assert np.abs(out[:, cut:] - base[:, cut:]).max() > 1e-3


@pytest.mark.parametrize("mode", ["ed", "bc"])
def test_router_context_states_ignore_noise(mode, tiny_cfg):
  """Context hidden states depend on neither the noise level nor x_t."""
  spec, params = tiny_setup(tiny_cfg, mode)
  g = spec.geometry
  n = g.window
  known = jnp.asarray(np.r_[np.ones(g.context), np.zeros(g.block)],
                      jnp.float32)
  mask = masks.window_mask(mode, n, g.context, g.block, g.window_chunks)
  pos = np.r_[np.arange(1, n + 1), 0]
  k1, k2 = jax.random.split(jax.random.PRNGKey(1))
  clean = jax.random.normal(k1, (2, n, spec.model.io_channels))
  last = spec.model.depth - 1
  ref = _full_forward(spec, params, clean, jnp.full((2,), .1), known, mask,
                      pos, exit_layer=last)
  noisy = clean.at[:].add(3 * jax.random.normal(k2, clean.shape))
  out = _full_forward(spec, params, noisy, jnp.full((2,), .9), known, mask,
                      pos, exit_layer=last, clean=clean)
  np.testing.assert_allclose(out[:, :g.context], ref[:, :g.context],
                             atol=1e-5, rtol=0)
  assert np.abs(out[:, g.context:] - ref[:, g.context:]).max() > 1e-2


def test_geometry_rejects_what_cannot_stream():
  with pytest.raises(ValueError, match="multiple of block"):
    Geometry(mode="bc", context=190, block=48, window_chunks=4)
  with pytest.raises(ValueError, match="window_chunks"):
    Geometry(mode="bc", context=96, block=48, window_chunks=4)
  with pytest.raises(ValueError, match="mode"):
    Geometry(mode="causal")
  Geometry(mode="ed", context=230, block=10)  # ED-U230 geometry is fine
  with pytest.raises(ValueError, match="rotary"):
    DiTConfig(embed_dim=64, num_heads=4)
  with pytest.raises(ValueError, match="unknown DiT config keys"):
    DiTConfig.from_dict({"width": 3})
