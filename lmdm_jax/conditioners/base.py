"""Conditioner registry and SAO's assembly of conditioning inputs.

Configs choose conditioners by name the way stable-audio-tools model configs
do (`conditioning.configs`):

  specs = [{"id": "seconds_total", "type": "number",
            "config": {"output_dim": 768, "min_val": 0, "max_val": 256}}]
  conds = build_conditioners(specs, cross_ids=["seconds_total"],
                             global_ids=["seconds_total"])
  params = conds.init(key, {"seconds_total": jnp.array([10.0])})
  cross, cross_mask, glob = conds.apply(params, {"seconds_total": ...})

Every conditioner is a Flax module mapping a batch of inputs to
(embeddings [B, L, D], mask [B, L]). `Conditioners` runs them and assembles
the DiT inputs exactly as SAO's `ConditionedDiffusionModelWrapper`:
cross-attention tokens are the listed conditioners' embeddings concatenated
along the token axis, and the global vector is the listed embeddings'
first token concatenated along channels.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from lmdm_jax.registry import Registry

_CONDITIONERS = Registry("conditioner type")


def register_conditioner(name: str):
  """Class decorator: makes a conditioner constructible by type name."""
  return _CONDITIONERS.register(name)


def registered():
  return _CONDITIONERS.names()


def make_conditioner(kind: str, name: str, **config) -> nn.Module:
  return _CONDITIONERS.get(kind)(name=name, **config)


class Conditioners(nn.Module):
  """All conditioners of a model; parameters live under their ids.

  Attributes:
    specs: tuple of (id, type, config items) - hashable.
    cross_ids: ids whose embeddings become cross-attention tokens, in order.
    global_ids: ids whose embeddings are concatenated into the global vector.
  """
  specs: Tuple[Tuple[str, str, Tuple[Tuple[str, Any], ...]], ...]
  cross_ids: Tuple[str, ...] = ()
  global_ids: Tuple[str, ...] = ()

  def setup(self):
    self.modules = {cid: make_conditioner(kind, cid, **dict(cfg))
                    for cid, kind, cfg in self.specs}

  def __call__(self, inputs: Mapping[str, Any]):
    """inputs: id -> that conditioner's batch input.

    Returns (cross [B, L, D] or None, cross_mask [B, L] bool or None,
    global [B, G] or None).
    """
    needed = set(self.cross_ids) | set(self.global_ids)
    missing = sorted(needed - set(inputs))
    if missing:
      raise ValueError(f"missing conditioning inputs {missing}; got "
                       f"{sorted(inputs)}")
    outs = {cid: self.modules[cid](inputs[cid]) for cid in sorted(needed)}
    cross = mask = glob = None
    if self.cross_ids:
      cross = jnp.concatenate([outs[i][0] for i in self.cross_ids], axis=1)
      mask = jnp.concatenate([outs[i][1] for i in self.cross_ids], axis=1)
    if self.global_ids:
      glob = jnp.concatenate([outs[i][0][:, 0] for i in self.global_ids],
                             axis=-1)
    return cross, mask, glob


def build_conditioners(specs: Sequence[Mapping[str, Any]],
                       cross_ids: Sequence[str] = (),
                       global_ids: Sequence[str] = ()) -> Conditioners:
  """From SAO-style dicts {"id", "type", "config"} -> `Conditioners`."""
  frozen, seen = [], set()
  for s in specs:
    unknown = sorted(set(s) - {"id", "type", "config"})
    if unknown or "id" not in s or "type" not in s:
      raise ValueError(f"conditioner spec needs 'id' and 'type' (and "
                       f"optionally 'config'), got keys {sorted(s)}")
    if s["id"] in seen:
      raise ValueError(f"duplicate conditioner id {s['id']!r}")
    _CONDITIONERS.get(s["type"])          # unknown type: ValueError
    seen.add(s["id"])
    frozen.append((s["id"], s["type"],
                   tuple(sorted(dict(s.get("config", {})).items()))))
  for i in list(cross_ids) + list(global_ids):
    if i not in seen:
      raise ValueError(f"conditioning id {i!r} has no conditioner; "
                       f"defined: {sorted(seen)}")
  return Conditioners(tuple(frozen), tuple(cross_ids), tuple(global_ids))
