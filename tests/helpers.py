"""Shared test helpers: tiny random models and full-sequence references."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.configs import dit_config, geometry
from lmdm_jax.model import masks
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.init import init_params, randomize
from lmdm_jax.model.rope import rope_table
from lmdm_jax.streaming.state import (StreamSpec, known_features,
                                      make_controls)


def tiny_setup(cfg, mode, batch=2, steps=2, cfg_branch=False, seed=0,
               **spec_kw):
  c = dit_config(cfg)
  spec = StreamSpec(c, geometry(cfg, mode), batch=batch,
                    cond_tokens=cfg.cond_tokens, steps=steps, cfg=cfg_branch,
                    **spec_kw)
  params = randomize(init_params(c, jax.random.PRNGKey(seed),
                                 cfg.cond_tokens),
                     jax.random.PRNGKey(seed + 1))
  return spec, params


def random_controls(spec, key, cfg_scale=1.0, seed=0):
  k1, k2 = jax.random.split(key)
  m = spec.model
  return make_controls(
      spec,
      jax.random.normal(k1, (spec.batch, spec.cond_tokens, m.cond_token_dim)),
      jax.random.normal(k2, (spec.batch, m.global_cond_dim)),
      cfg_scale=cfg_scale, seed=seed)


def make_reference(spec, params):
  """Jitted full-sequence forward with traced mask and RoPE tables.

  ref(x [B,N,C], t [B], controls, known [N] 0/1, mask [N+1,N+1],
      cos/sin tables [N+1,R]) -> v [B,N,C]
  """
  model = DiT(spec.model)

  @jax.jit
  def ref(x, t, controls, known, mask, table):
    cond = model.apply({"params": params}, controls.cross_tokens,
                       controls.global_cond, method=DiT.condition)
    feats = known_features(spec, x) * known[None, :, None]
    out, _ = model.apply({"params": params}, x * (1 - known)[None, :, None],
                         t, cond, table, table, feats, 1.0 - known, None,
                         mask, method=DiT.tokens)
    return out
  return ref


def bc_reference_inputs(spec, n_cur, n_total):
  """Mask/positions for the sequence so far (n_cur frames) padded to n_total.

  Frames >= n_cur are padding that no earlier query may see (block-causal),
  so the outputs of frames < n_cur equal the unpadded forward exactly. The
  global token belongs to the current (last real) chunk and takes position
  n_cur - T, i.e. 0 in window-relative terms.
  """
  g = spec.geometry
  ids = np.arange(n_total) // g.block
  cur = (n_cur - 1) // g.block
  q = np.concatenate([ids, [cur]])
  mask = masks.block_causal_from_chunks(q, q, g.window_chunks)
  pos = np.concatenate([np.arange(1, n_total + 1), [n_cur - g.window]])
  return jnp.asarray(mask), rope_table(pos, spec.model.rotary_dim,
                                       spec.model.rope_base)
