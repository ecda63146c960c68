"""A random-weight model package at configs/demo.py:smoke size.

Stands in for the shipped demo model (lmdm_jax/assets/demo) in the live
and notebook tests: same package format, text encoder (hashed words) and
codec (mel), every DiT parameter random so that blocks differ when a
control changes (the init's zero output layers would make every block
zero whatever the prompt).
"""
from __future__ import annotations

import os

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCABULARY = ("slow", "fast", "organ", "piano", "ragtime", "chorale",
              "strings", "folk", "tune", "bach")


def make_smoke_package(out: str, seed: int = 0, steps: int = 2,
                       cfg_scale: float = 1.0,
                       config: str = "demo.py:smoke") -> str:
  """Writes a package to `out` (a directory) and returns its path.
  `config`: a file:variant under configs/ (e.g. "sketch_demo.py:smoke_jam"
  for a model with sketch controls and a partner)."""
  from lmdm_jax import pretrained
  from lmdm_jax.configs import load_config
  cfg = load_config(os.path.join(REPO, "configs", config))
  params = random_params(cfg, seed)
  return pretrained.save(
      out, dit_params=params, cfg=cfg,
      text={"encoder": "hashed_words", "dim": cfg.model.cond_token_dim,
            "max_tokens": cfg.cond_tokens, "vocabulary": list(VOCABULARY)},
      codec={"name": "mel", "kwargs": {}},
      defaults={"steps": steps, "cfg_scale": cfg_scale,
                "sampler": "pingpong"},
      meta={"source": "tests/live_helpers.py: random weights"})


def random_params(cfg, seed: int = 0):
  """DiT params of `cfg` with every entry random, drawn with numpy.

  The same distributions as `lmdm_jax.model.init.randomize` (kernels
  N(0, 1 / fan_in), norm gains 1 + N(0, 0.1^2), Fourier weights N(0, 1),
  the rest N(0, 0.1^2)); shapes come from `jax.eval_shape`, so nothing is
  compiled (eager per-leaf jax.random costs ~15 s at smoke size on 2 cores).
  """
  import jax
  from lmdm_jax.configs import dit_config
  from lmdm_jax.model.init import param_shapes
  shapes = param_shapes(dit_config(cfg), cfg.cond_tokens)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = str(path[-1].key)
    noise = rng.standard_normal(leaf.shape).astype(np.float32)
    if name == "kernel":
      return noise / np.sqrt(leaf.shape[0])
    if name in ("gamma", "scale"):
      return 1.0 + 0.1 * noise
    if name == "weight":
      return noise
    return 0.1 * noise
  return jax.tree_util.tree_map_with_path(draw, shapes)
