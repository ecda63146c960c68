"""T5's sentencepiece tokenization as SAO calls it, from a user-supplied file.

SAO's T5Conditioner calls the Hugging Face tokenizer with truncation=True,
padding="max_length", max_length=64 (SAO Small) or 128 (SAO 1.0). For T5
that is: sentencepiece ids, truncated to max_length - 1, then the end token
</s> (id 1), then padding id 0 up to max_length; the mask marks the real
tokens (including </s>). No model file is downloaded: pass the
`spiece.model` of the checkpoint you converted.
"""
from __future__ import annotations

import os
from typing import Sequence, Tuple

import numpy as np

SAO_MAX_LENGTH = {"sao_small": 64, "sao": 128}


class T5Tokenizer:
  """texts -> (ids [B, max_length] int32, mask [B, max_length] bool)."""

  def __init__(self, model_file: str, max_length: int = 64,
               eos_id: int = 1, pad_id: int = 0):
    if os.path.isdir(model_file):
      model_file = os.path.join(model_file, "spiece.model")
    if not os.path.exists(model_file):
      raise FileNotFoundError(f"sentencepiece model not found: {model_file}")
    if max_length < 2:
      raise ValueError(f"max_length must be >= 2, got {max_length}")
    import sentencepiece as spm  # the `convert` extra
    self.sp = spm.SentencePieceProcessor(model_file=model_file)
    self.max_length, self.eos_id, self.pad_id = max_length, eos_id, pad_id

  def __call__(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(texts, str):
      raise ValueError("pass a list of texts, not a single string")
    ids = np.full((len(texts), self.max_length), self.pad_id, np.int32)
    mask = np.zeros((len(texts), self.max_length), bool)
    for i, t in enumerate(texts):
      row = self.sp.encode(t)[:self.max_length - 1] + [self.eos_id]
      ids[i, :len(row)] = row
      mask[i, :len(row)] = True
    return ids, mask
