"""A prompt -> the DiT's conditioning inputs, on the host, one prompt at a
time (what a live session asks for between blocks; lmdm_jax/package.py
builds these from a package's parts).

  T5Prompts      SAO's T5 conditioner: text -> [max_length, d_model]
  CrossTokens    the cross-attention input: the cross ids' embeddings
                 concatenated along tokens, as stable-audio-tools'
                 MultiConditioner + DiT wrapper assemble them
  number_embeddings   each number conditioner's [D] embedding of its
                 (constant) stream input, e.g. seconds_total
  stream_seconds_total   that input: what an endless stream feeds
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np


class T5Prompts:
  """text -> [max_length, d_model]: T5's last hidden state with padding
  zeroed, float32 (SAO's T5Conditioner). The encoder is jitted once;
  tokenisation (sentencepiece) stays on the host.

  params: a T5Encoder parameter tree; tokenizer_file: its spiece.model."""
  unknown_words = staticmethod(lambda text: [])

  def __init__(self, params, tokenizer_file: str,
               config: Mapping[str, Any], max_length: int):
    import jax
    import jax.numpy as jnp
    from lmdm_jax.text.t5 import T5Config, T5Encoder
    from lmdm_jax.text.tokenizer import T5Tokenizer
    self.config = T5Config(**config)
    self.params = params
    self.tokenizer = T5Tokenizer(tokenizer_file, max_length)
    self.max_tokens, self.dim = max_length, self.config.d_model
    model = T5Encoder(self.config)
    self._fn = jax.jit(lambda p, i, m: model.apply({"params": p}, i, m)
                       * m[..., None])
    self._jnp = jnp

  def encode_one(self, text: str) -> np.ndarray:
    ids, mask = self.tokenizer([text])
    out = self._fn(self.params, self._jnp.asarray(ids),
                   self._jnp.asarray(mask))
    return np.asarray(out[0], np.float32)


class CrossTokens:
  """Prompt -> [tokens, D]: the cross_ids' embeddings concatenated along
  the token axis (the text id: the text encoder's [L, D]; a number id: its
  stream input's [1, D] from `numbers`)."""

  def __init__(self, text, text_id: str, cross_ids: Sequence[str],
               numbers: Mapping[str, np.ndarray]):
    self.text, self.text_id = text, text_id
    self.cross_ids, self.numbers = list(cross_ids), dict(numbers)

  def encode_one(self, text: str) -> np.ndarray:
    parts = []
    for i in self.cross_ids:
      if i == self.text_id:
        parts.append(np.asarray(self.text.encode_one(text), np.float32))
      else:
        parts.append(self.numbers[i][None])
    return np.concatenate(parts, axis=0)

  def unknown_words(self, text: str):
    f = getattr(self.text, "unknown_words", None)
    return f(text) if f is not None else []


def number_embeddings(specs: Sequence[Mapping[str, Any]], params,
                      inputs: Mapping[str, float]) -> Dict[str, np.ndarray]:
  """id -> [output_dim] float32: each number conditioner (SAO-style spec)
  applied to its input (params: {id: that conditioner's tree})."""
  import jax.numpy as jnp
  from lmdm_jax.conditioners.base import build_conditioners
  out = {}
  for s in specs:
    conds = build_conditioners([s], [s["id"]])
    v = jnp.asarray([float(inputs[s["id"]])], jnp.float32)
    emb, _, _ = conds.apply({"params": {s["id"]: params[s["id"]]}},
                            {s["id"]: v})
    out[s["id"]] = np.asarray(emb[0, 0], np.float32)
  return out


def stream_seconds_total(sample_size: Optional[int], sample_rate: int,
                         window_frames: int, hop: int) -> float:
  """What an endless stream feeds as seconds_total, for every block.

  The paper's streaming generator (`generate_diffusion_cond_blockar` in
  the LMDM code) runs the conditioner once, before the block loop, on the
  caller's conditioning dict, so seconds_total is one constant for the
  whole stream; the scripts around stable-audio-tools build that dict with
  seconds_total = sample_size / sample_rate, the model's window length
  (SAO Small: 524288 / 44100 = 11.89 s; an LMDM window of 240 frames:
  11.15 s). A stream is a sequence of full windows, so it feeds the window
  length: never the stream's running length (which grows without bound
  and would leave the 0..256 s range the conditioner was trained on).
  """
  if sample_size:
    return float(sample_size) / float(sample_rate)
  return float(window_frames * hop) / float(sample_rate)
