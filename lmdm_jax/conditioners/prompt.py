"""A prompt -> the DiT's conditioning inputs, on the host, one prompt at a
time (what a live session asks for between blocks) or a batch of captions
(what the training pipeline asks for); lmdm_jax/package.py builds these
from a package's parts.

  T5Prompts      SAO's T5 conditioner: text -> [max_length, d_model]
                 (`encode_one`), texts -> [B, max_length, d_model]
                 (`encode`, one jitted call per batch)
  CrossTokens    the cross-attention input: the cross ids' embeddings
                 concatenated along tokens, as stable-audio-tools'
                 MultiConditioner + DiT wrapper assemble them
  BatchConditioning   the same for a batch of training captions, plus the
                 global vector: captions -> cross [B, L, D], global [B, G]
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
    return self.encode([text])[0]

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """texts -> [B, max_length, d_model] float32 (one compile per B)."""
    ids, mask = self.tokenizer(list(texts))
    out = self._fn(self.params, self._jnp.asarray(ids),
                   self._jnp.asarray(mask))
    return np.asarray(out, np.float32)


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


class BatchConditioning:
  """Training captions -> the DiT's conditioning inputs, assembled exactly
  as `CrossTokens` (and stable-audio-tools' MultiConditioner +
  ConditionedDiffusionModelWrapper.get_conditioning_inputs) do:

    cross  [B, L, D]: the cross_ids' embeddings concatenated along tokens
           (the text id: T5's [max_length, D] with padding zeroed, batched;
           a number id: its embedding [1, D])
    global [B, G]: the global_ids' embeddings concatenated along channels

  Number conditioners embed their stream input (`numbers`: id -> [D],
  computed once), the same constant a stream feeds (seconds_total = the
  window length): training windows and stream blocks see one value
  (docs/training.md). Their weights are not trained.
  """

  def __init__(self, text, text_id: str, cross_ids: Sequence[str],
               global_ids: Sequence[str], numbers: Mapping[str, np.ndarray]):
    self.text, self.text_id = text, text_id
    self.cross_ids, self.global_ids = list(cross_ids), list(global_ids)
    self.numbers = dict(numbers)

  def __call__(self, captions: Sequence[str]) -> np.ndarray:
    """captions -> cross tokens [B, L, D] float32."""
    n = len(captions)
    parts = []
    for i in self.cross_ids:
      if i == self.text_id:
        parts.append(np.asarray(self.text.encode(list(captions)),
                                np.float32))
      else:
        parts.append(np.broadcast_to(self.numbers[i][None, None],
                                     (n, 1, self.numbers[i].shape[-1])))
    return np.concatenate(parts, axis=1).astype(np.float32)

  def global_cond(self, n: int) -> Optional[np.ndarray]:
    """[n, G] float32, or None without global ids."""
    if not self.global_ids:
      return None
    g = np.concatenate([self.numbers[i] for i in self.global_ids])
    return np.broadcast_to(g[None], (n, g.shape[0])).astype(np.float32)


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
