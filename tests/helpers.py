"""Shared test helpers: tiny models with every parameter random; a check
that an atomic write left no temporary directory."""
from __future__ import annotations

import glob
import os

import jax

from lmdm_jax.configs import dit_config, geometry
from lmdm_jax.model.init import init_params, randomize
from lmdm_jax.streaming.state import StreamSpec, make_controls


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


def no_leftovers(parent, name):
  """No `.NAME.*` temporary directory of an atomic write is left in
  `parent`."""
  assert not glob.glob(os.path.join(str(parent), f".{name}.*")), \
      os.listdir(parent)


def load_benchmark(name: str):
  """benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
  import importlib.util
  import os
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(root, "benchmarks", name + ".py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod
