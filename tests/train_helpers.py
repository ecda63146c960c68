"""Helpers of the training tests: tiny finetune configs and batches."""
from __future__ import annotations

import os

import numpy as np

from lmdm_jax.configs import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_finetune(mode: str = "bc", depth: int = 1):
  """configs/finetune_<mode>.py:tiny with a 1-layer DiT (fast compiles)."""
  cfg = load_config(os.path.join(ROOT, "configs", f"finetune_{mode}.py:tiny"))
  cfg.model.depth = depth
  return cfg


def random_batch(cfg, batch: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  t = cfg.geometry.context + cfg.geometry.block
  m = cfg.model
  return {
      "latents": rng.normal(size=(batch, t, m.io_channels)).astype(
          np.float32),
      "cross_tokens": rng.normal(
          size=(batch, cfg.cond_tokens, m.cond_token_dim)).astype(np.float32),
      "global_cond": rng.normal(size=(batch, m.global_cond_dim)).astype(
          np.float32),
  }
