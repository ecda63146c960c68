"""Loading ml_collections config files (`path/to/config.py[:arg]`)."""
from __future__ import annotations

import importlib.util
import os

import ml_collections

from lmdm_jax.model.config import DiTConfig, Geometry


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `configs/x.py` or `configs/x.py:arg` by calling get_config(arg)."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise FileNotFoundError(f"config file not found: {path}")
  module_spec = importlib.util.spec_from_file_location("_lmdm_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{path} defines no get_config(arg)")
  return module.get_config(arg) if arg else module.get_config()


def dit_config(cfg) -> DiTConfig:
  return DiTConfig.from_dict(cfg.model.to_dict())


def geometry(cfg, mode: str | None = None) -> Geometry:
  d = cfg.geometry.to_dict()
  if mode is not None:
    d["mode"] = mode
  return Geometry.from_dict(d)
