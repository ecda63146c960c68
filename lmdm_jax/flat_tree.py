"""Nested parameter dicts <-> flat {"a/b/c": array} maps: the key layout of
every .npz the project writes (packages, converted checkpoints). Numpy
only, so both the package loader and the converters use it without
importing each other."""
from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np


def flatten(tree, prefix: str = "") -> Dict[str, np.ndarray]:
  """Nested dicts -> {"a/b/c": float32 array}."""
  out = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten(v, key + "/"))
    else:
      out[key] = np.asarray(v, np.float32)
  return out


def unflatten(flat: Mapping[str, Any]) -> Dict[str, Any]:
  """{"a/b/c": leaf} -> nested dicts (leaves as given)."""
  tree: Dict[str, Any] = {}
  for k, v in flat.items():
    node = tree
    *parents, leaf = k.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree
