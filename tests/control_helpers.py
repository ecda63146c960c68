"""Shared helpers of the control tests: tiny control models, every
parameter random (the control projections are zero-initialised, which
would hide bugs)."""
import dataclasses

import jax
import jax.numpy as jnp

from lmdm_jax.configs import dit_config, geometry
from lmdm_jax.model import control_inputs as ci
from lmdm_jax.model.init import init_params, randomize
from lmdm_jax.streaming.state import StreamSpec

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
