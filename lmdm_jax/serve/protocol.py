"""What a message from the page (or OSC, or MIDI) may say.

Every control is turned into ONE line of `lmdm live`'s command language
(lmdm_jax/live/commands.py) and checked by its parser, so the ranges
and rules (weights >= 0, cfg rescale in [0, 1], seeds in int32, ...) are
those of the terminal and exist once. This module only checks what JSON adds
to a line: the size of a message, its fields and their types, and that
numbers are finite (JSON from a browser may carry NaN / Infinity literals).

Page -> server (text frames, JSON objects, at most MAX_MESSAGE_BYTES):
  {"type": "cmd", "line": "cfg 3"}                any `lmdm live` line
  {"type": "prompt", "text": "slow organ"}        -> p TEXT
  {"type": "mix", "prompts": {"A": 0.7, "B": .3}} -> mix A=0.7; B=0.3
  {"type": "crossfade", "prompts": {...}, "blocks": 4, "drop": true}
                                                  -> x ... N (then drop)
  {"type": "cfg", "scale": 3.0, "rescale": 0.0}   -> cfg X R
  {"type": "steps", "k": 4}   {"type": "seed", "n": 7}
  {"type": "drop", "frames": 90}   (frames optional)
  {"type": "pause"} {"type": "resume"} {"type": "status"} {"type": "control"}
  {"type": "session"}   a session of this page's own (up to --max-sessions)
  {"type": "sketch", "curves": {"loudness": [..]}}  drawn sketch loop
      (values in [0, 1] of the canvas, one per latent frame; {} clears)
  {"type": "input", "as": "partner" | "sketch" | "off"}  then binary
      frames of the page's input (mic or file): int32 [0x4c4d4931 'LMI1',
      channels, samples, 0] + float32 planar at the model's rate.
Every message may carry "id" (an int or string < 64 chars) echoed in the
reply: {"type": "ack", "id", "block", "message"} or
{"type": "error", "id", "reason"}.
"""
from __future__ import annotations

import json
import math
from typing import Dict, List, Optional, Tuple

from lmdm_jax.live.commands import Command, parse_command

MAX_MESSAGE_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 500
MAX_PROMPTS = 16
MAX_CURVE = 4096
INPUT_MAGIC = 0x4C4D4931
MAX_INPUT_SAMPLES = 16384

# type -> (required fields, optional fields); "id" and "type" always allowed.
FIELDS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "cmd": (("line",), ()),
    "prompt": (("text",), ()),
    "mix": (("prompts",), ()),
    "crossfade": (("prompts",), ("blocks", "drop")),
    "cfg": (("scale",), ("rescale",)),
    "steps": (("k",), ()),
    "seed": (("n",), ()),
    "drop": ((), ("frames",)),
    "pause": ((), ()), "resume": ((), ()), "status": ((), ()),
    "control": ((), ()), "hello": ((), ("token",)), "session": ((), ()),
    "sketch": (("curves",), ()),
    "input": (("as",), ()),
}
# Commands the page may not send as a line: they stop or block the server.
REFUSED_LINES = {"q": "the page cannot quit the server (Ctrl-C it)",
                 "wait": "wait blocks the reader; pages do not wait",
                 "help": None}


class ProtocolError(ValueError):
  """A message refused; str(e) is the reason sent back to the page."""


def _refuse_constant(name: str):
  raise ProtocolError(f"{name} is not a number this instrument accepts")


def decode(raw) -> dict:
  """Raw text (or bytes) -> a JSON object, checked for size and syntax.

  NaN / Infinity literals are refused here (json accepts them by default).
  """
  size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
  if size > MAX_MESSAGE_BYTES:
    raise ProtocolError(f"message of {size} bytes; the limit is "
                        f"{MAX_MESSAGE_BYTES}")
  try:
    msg = json.loads(raw, parse_constant=_refuse_constant)
  except ProtocolError:
    raise
  except (ValueError, UnicodeDecodeError) as e:
    raise ProtocolError(f"malformed JSON: {e}") from None
  if not isinstance(msg, dict):
    raise ProtocolError(f"a message is a JSON object, got "
                        f"{type(msg).__name__}")
  return msg


def _number(msg: dict, key: str, integer: bool = False):
  x = msg[key]
  if isinstance(x, bool) or not isinstance(x, (int, float)):
    raise ProtocolError(f"{key} must be a number, got {type(x).__name__}")
  if not math.isfinite(x):
    raise ProtocolError(f"{key} must be finite, got {x}")
  if integer:
    if x != int(x):
      raise ProtocolError(f"{key} must be an integer, got {x}")
    return int(x)
  return float(x)


def _text(msg: dict, key: str) -> str:
  x = msg[key]
  if not isinstance(x, str):
    raise ProtocolError(f"{key} must be a string, got {type(x).__name__}")
  if len(x) > MAX_PROMPT_CHARS:
    raise ProtocolError(f"{key} has {len(x)} characters; the limit is "
                        f"{MAX_PROMPT_CHARS}")
  if any(c in x for c in "\n\r;="):
    # ';' and '=' are the mix syntax, a newline would end the line.
    raise ProtocolError(f"{key} may not contain newlines, ';' or '='")
  return x


def _prompts(msg: dict) -> Dict[str, float]:
  p = msg["prompts"]
  if not isinstance(p, dict) or not p:
    raise ProtocolError("prompts must be a non-empty object {text: weight}")
  if len(p) > MAX_PROMPTS:
    raise ProtocolError(f"{len(p)} prompts; the limit is {MAX_PROMPTS}")
  out = {}
  for text, w in p.items():
    _text({"prompt": text}, "prompt")
    if not text.strip():
      raise ProtocolError("a prompt of a mix may not be empty")
    out[text.strip()] = _number({f"the weight of {text!r}": w},
                                f"the weight of {text!r}")
  return out


def _fmt(x: float) -> str:
  return repr(float(x))


def to_lines(msg: dict) -> List[str]:
  """A checked message -> the `lmdm live` lines it means ([] for messages
  that are not commands: pause, resume, control, hello, sketch).

  Raises ProtocolError for unknown types / fields, wrong types, non-finite
  numbers, and whatever `parse_command` refuses (same words as the
  terminal's). Nothing is applied here.
  """
  kind = msg.get("type")
  if not isinstance(kind, str) or kind not in FIELDS:
    raise ProtocolError(f"unknown message type {kind!r}; known: "
                        f"{sorted(FIELDS)}")
  required, optional = FIELDS[kind]
  extra = set(msg) - set(required) - set(optional) - {"type", "id"}
  if extra:
    raise ProtocolError(f"unknown fields {sorted(extra)} for {kind!r}")
  missing = [k for k in required if k not in msg]
  if missing:
    raise ProtocolError(f"{kind!r} needs {missing}")
  if "id" in msg:
    i = msg["id"]
    if isinstance(i, bool) or not isinstance(i, (int, str)) or (
        isinstance(i, str) and len(i) > 64):
      raise ProtocolError("id must be an integer or a string of < 64 chars")
  if kind == "cmd":
    line = msg["line"]
    if not isinstance(line, str) or "\n" in line or len(line) > 4096:
      raise ProtocolError("line must be one line of text (< 4096 chars)")
    lines = [line]
  elif kind == "prompt":
    lines = [f"p {_text(msg, 'text')}"]
  elif kind == "mix":
    lines = ["mix " + "; ".join(f"{t}={_fmt(w)}"
                                for t, w in _prompts(msg).items())]
  elif kind == "crossfade":
    prompts = _prompts(msg)
    blocks = _number(msg, "blocks", True) if "blocks" in msg else 4
    text = "; ".join(f"{t}={_fmt(w)}" for t, w in prompts.items())
    lines = [f"x {text} {blocks}"]
    if "drop" in msg:
      if not isinstance(msg["drop"], bool):
        raise ProtocolError("drop must be true or false")
      if msg["drop"]:
        lines.append("drop")
  elif kind == "cfg":
    scale = _number(msg, "scale")
    rescale = _number(msg, "rescale") if "rescale" in msg else 0.0
    lines = [f"cfg {_fmt(scale)} {_fmt(rescale)}"]
  elif kind == "steps":
    lines = [f"steps {_number(msg, 'k', True)}"]
  elif kind == "seed":
    lines = [f"seed {_number(msg, 'n', True)}"]
  elif kind == "drop":
    lines = ["drop" + (f" {_number(msg, 'frames', True)}"
                       if "frames" in msg else "")]
  elif kind == "status":
    lines = ["status"]
  else:
    return []
  for line in lines:
    check_line(line)
  return lines


def check_line(line: str) -> Optional[Command]:
  """parse_command, plus what a page may not send; ProtocolError if bad."""
  try:
    cmd = parse_command(line)
  except ValueError as e:
    raise ProtocolError(str(e)) from None
  if cmd is not None and cmd.name in REFUSED_LINES:
    raise ProtocolError(REFUSED_LINES[cmd.name]
                        or f"{cmd.name} is not a page command")
  return cmd


def coalesce_key(line: str) -> str:
  """Controls that replace one another share a key: within one block only
  the latest of each is applied (a slider dragged at 1 kHz -> one change
  per block). Prompts, mixes and crossfades all set the prompt."""
  cmd = parse_command(line)
  if cmd.name in ("p", "mix", "x"):
    return "prompt"
  return cmd.name


def sketch_curves(msg: dict, names) -> Dict[str, List[float]]:
  """{"curves": {name: [values in [0, 1]]}} checked against the model's
  sketch control names."""
  curves = msg["curves"]
  if not isinstance(curves, dict):
    raise ProtocolError("curves must be an object {name: [..]} ({} clears)")
  out = {}
  for name, values in curves.items():
    if name not in names:
      raise ProtocolError(f"unknown sketch control {name!r}; this model "
                          f"has {sorted(names) or 'none'}")
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_CURVE:
      raise ProtocolError(f"{name} must be a list of 1..{MAX_CURVE} numbers")
    vals = []
    for v in values:
      if isinstance(v, bool) or not isinstance(v, (int, float)) or \
          not math.isfinite(v) or not 0 <= v <= 1:
        raise ProtocolError(f"{name}: values must be finite numbers in "
                            f"[0, 1]")
      vals.append(float(v))
    out[name] = vals
  return out


def input_frame(data: bytes, channels: int):
  """A binary input frame from the page -> float32 [channels, samples]."""
  import numpy as np
  if len(data) < 16 or len(data) > 16 + 4 * 2 * MAX_INPUT_SAMPLES:
    raise ProtocolError(f"binary frame of {len(data)} bytes is not an input "
                        f"frame (16-byte header + <= {MAX_INPUT_SAMPLES} "
                        f"samples per channel)")
  magic, ch, n, _ = np.frombuffer(data[:16], "<i4")
  if magic != INPUT_MAGIC:
    raise ProtocolError("binary frames are input audio (magic LMI1)")
  if ch != channels or n < 1 or len(data) != 16 + 4 * ch * n:
    raise ProtocolError(f"input frame must be {channels} channel(s) of "
                        f"float32 with the length its header says")
  x = np.frombuffer(data[16:], "<f4").reshape(ch, n)
  if not np.isfinite(x).all():
    raise ProtocolError("input audio must be finite")
  return np.clip(x, -1, 1)
