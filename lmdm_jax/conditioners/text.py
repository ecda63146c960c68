"""`t5`: SAO's T5Conditioner as a registered conditioner type.

Input: (ids [B, L] int32, mask [B, L] bool) from `lmdm_jax.text.tokenizer`
(tokenisation stays on the host). Output: (T5 last hidden state with padded
positions zeroed [B, L, d_model], mask) - what SAO feeds to the DiT. The
parameters are a `T5Encoder`'s (load them with `lmdm_jax.convert.t5.load_t5`
and place them under the conditioner's id); SAO keeps T5 frozen.

  {"id": "prompt", "type": "t5", "config": {"d_model": 768, ...T5Config}}
"""
from __future__ import annotations

import jax.numpy as jnp

from lmdm_jax.conditioners.base import register_conditioner
from lmdm_jax.text.t5 import T5Config, T5Encoder


class T5TextConditioner(T5Encoder):
  """A T5Encoder (same parameter tree) taking (ids, mask), returning
  (hidden state with padding zeroed, mask)."""

  def __call__(self, inputs):
    if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
      raise ValueError(f"t5 conditioner {self.name} expects (ids [B, L], "
                       f"mask [B, L]) from T5Tokenizer")
    ids = jnp.asarray(inputs[0], jnp.int32)
    mask = jnp.asarray(inputs[1], bool)
    h = super().__call__(ids, mask)
    return h * mask[..., None], mask


@register_conditioner("t5")
def t5_conditioner(name: str, t5_model_name: str = "t5-base",
                   max_length: int = 64, **config) -> T5TextConditioner:
  """Config keys are T5Config's (t5-base defaults); SAO's `t5_model_name`
  and `max_length` are accepted and unused (the tokenizer owns max_length,
  the converted directory the weights)."""
  del t5_model_name, max_length
  return T5TextConditioner(T5Config(**config), name=name)
