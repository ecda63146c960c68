"""What a prompt loses on its way to the model, said in words.

`prompt_notes(encoder, text)` -> lines for `lmdm generate` / `lmdm live`
(and `unknown_words_note` of the live command layer): an empty prompt
(the model then plays unconditioned), words the model never saw in
training, words cut by the encoder's token limit (a different reason with
a different fix), words changed by Unicode normalisation and characters
ignored. Encoders with `describe(text)` (text/hashed.py) report all of it;
others with `unknown_words` only the unknown words; others nothing.
Control characters in the lines are escaped (`cliutil.printable`).
"""
from __future__ import annotations

from typing import List

from lmdm_jax.cliutil import printable

_SHOW = 12                  # words listed per note before "... (N more)"


def _list(ws) -> str:
  ws = list(ws)
  more = f" ... ({len(ws) - _SHOW} more)" if len(ws) > _SHOW else ""
  return " ".join(ws[:_SHOW]) + more


def prompt_notes(encoder, text: str) -> List[str]:
  """Lines saying what of `text` has no effect and why ([] if all does)."""
  if not text.strip():
    return ["empty prompt: the model plays unconditioned (its 'no text' "
            "input)"]
  if hasattr(encoder, "describe"):
    d = encoder.describe(text)
  elif hasattr(encoder, "unknown_words"):
    d = {"words": [None], "unknown": encoder.unknown_words(text)}
  else:
    return []
  notes = []
  if d.get("normalised"):
    notes.append("normalised: " + ", ".join(
        f"{a} -> {b}" for a, b in d["normalised"]))
  if d.get("ignored"):
    notes.append("ignored (not letters or digits): "
                 + " ".join(d["ignored"]))
  if d.get("unknown"):
    notes.append(f"words the model never saw in training (no effect): "
                 f"{_list(d['unknown'])}")
  if d.get("over_limit"):
    limit = getattr(encoder, "max_tokens", "the")
    notes.append(f"{len(d['over_limit'])} words past the {limit}-word "
                 f"limit of the text encoder dropped: "
                 f"{_list(d['over_limit'])}")
  if not d.get("words"):
    notes.append("no words left: the model plays unconditioned")
  return [printable(n, keep="") for n in notes]
