"""A weights-free text encoder for the demo model: hashed word vectors.

Caption -> tokens [L, D]: each lower-cased word (letters or digits) becomes
a fixed pseudo-random vector with N(0, 1) components, seeded by a BLAKE2b
hash of the word, so the same word gives the same vector on every machine
and no weights ship or download. Padding rows are zeros, which is also the
DiT's "no text" input (CFG's unconditional branch and CFG dropout). The
DiT learns the rest: its cond-token projection and cross-attention read
the set of words.

Why this and not a pretrained sentence encoder: the demo's captions are
written from metadata (tempo word, composer, genre, key, mode, ensemble,
source) with a closed vocabulary of ~150 words, so a bag of words carries
all their information; it costs nothing at run time on a laptop CPU, keeps
PyTorch and a 90 MB encoder out of the main install, and is exactly
reproducible. What it cannot do: relate words it never saw in training to
ones it did ("violins" is not "strings"). `unknown_words` lists such words
so `lmdm generate` can say which words of a prompt the model ignores.

Words: the caption is case-folded and NFKD-normalised with combining marks
removed ("Dvořák" -> "dvorak", "Café" -> "cafe", "ﬁ" -> "fi"); a word is a
run of letters or digits of any script ("音楽" stays one word, never split
or dropped), so ASCII captions read exactly as before. `describe` says
what of a prompt has no effect and why: words the model never saw, words
past the `max_tokens` limit, words changed by normalisation, and ignored
symbols (emoji and the like; ASCII punctuation just separates words).
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

_WORD = re.compile(r"[^\W_]+")


def normalise(text: str) -> str:
  """Case-folded, NFKD, combining marks removed (ASCII is only lowered)."""
  if text.isascii():
    return text.lower()
  text = unicodedata.normalize("NFKD", text.casefold())
  return "".join(c for c in text if not unicodedata.combining(c))


def words(text: str) -> List[str]:
  """Normalised words (letters/digits of any script) of a caption, in
  order; for ASCII text the lower-cased runs of [a-z0-9]."""
  return _WORD.findall(normalise(text))


class HashedWords:
  """Captions -> cross-attention tokens [B, L, D] float32 (host numpy).

  Args:
    dim: token width D (the DiT's cond_token_dim).
    max_tokens: L; later words are dropped (demo captions have <= 20).
    vocabulary: words seen in training; only used by `unknown_words`.
  """
  name = "hashed_words"

  def __init__(self, dim: int, max_tokens: int,
               vocabulary: Optional[Iterable[str]] = None):
    if dim <= 0 or max_tokens <= 0:
      raise ValueError(f"dim and max_tokens must be positive, got "
                       f"dim={dim}, max_tokens={max_tokens}")
    self.dim, self.max_tokens = int(dim), int(max_tokens)
    self.vocabulary = frozenset(vocabulary or ())
    self._cache: Dict[str, np.ndarray] = {}

  def vector(self, word: str) -> np.ndarray:
    v = self._cache.get(word)
    if v is None:
      seed = int.from_bytes(
          hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
      v = np.random.default_rng(seed).standard_normal(self.dim)
      v = self._cache[word] = v.astype(np.float32)
    return v

  def encode_one(self, text: str) -> np.ndarray:
    """[L, D] for one caption ("" -> all zeros, the unconditional input)."""
    out = np.zeros((self.max_tokens, self.dim), np.float32)
    for i, w in enumerate(words(text)[:self.max_tokens]):
      out[i] = self.vector(w)
    return out

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    """[B, L, D] for a batch of captions."""
    if isinstance(texts, str):
      raise TypeError("pass a list of captions, not one string")
    return np.stack([self.encode_one(t) for t in texts]) if len(texts) else \
        np.zeros((0, self.max_tokens, self.dim), np.float32)

  def unknown_words(self, text: str) -> List[str]:
    """Words of `text` within max_tokens that are not in the training
    vocabulary (no effect); words past the limit: `describe`."""
    return self.describe(text)["unknown"]

  def describe(self, text: str) -> Dict[str, list]:
    """What of `text` reaches the model and what does not, and why.

    -> {"words": the words encoded (<= max_tokens), "unknown": those the
    training vocabulary lacks (encoded, but the model never learnt them),
    "over_limit": words dropped past max_tokens, "normalised": [original,
    word] pairs changed by normalisation, "ignored": non-ASCII characters
    that are neither letters nor digits (dropped)}.
    """
    ws = words(text)
    kept = ws[:self.max_tokens]
    unknown = [w for w in kept if self.vocabulary and w not in
               self.vocabulary]
    normalised, ignored = [], []
    if not text.isascii():
      for raw in text.split():
        for piece in re.findall(r"[^\W_]+", raw.casefold()):
          norm = words(piece)
          if norm and norm != [piece] and [piece, " ".join(norm)] \
              not in normalised:
            normalised.append([piece, " ".join(norm)])
      ignored = sorted({c for c in text if not c.isascii() and not
                        _WORD.match(normalise(c)) and not c.isspace()})
    return {"words": kept, "unknown": list(dict.fromkeys(unknown)),
            "over_limit": ws[self.max_tokens:], "normalised": normalised,
            "ignored": ignored}


def vocabulary_of(captions: Iterable[str]) -> List[str]:
  """Sorted distinct words of a set of captions."""
  out = set()
  for c in captions:
    out.update(words(c))
  return sorted(out)
