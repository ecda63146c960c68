"""MIDI (mido + python-rtmidi) into the same session as the page.

A mapping file (JSON) says what each controller and note does:

  {"channel": null,                        # null: any channel, else 0..15
   "pads": ["slow bach chorale", "fast irish folk fiddle"],
   "cc": {"1": {"to": "cfg", "min": 0, "max": 8},
          "2": {"to": "weight", "pad": 0},  "3": {"to": "weight", "pad": 1},
          "4": {"to": "crossfade", "min": 1, "max": 16},
          "5": {"to": "steps"}},
   "notes": {"60": {"pad": 0}, "62": {"pad": 1}, "64": {"to": "drop"}}}

CC "weight" sets one pad's weight (0..127 -> 0..1) and sends the mix of all
pads; "cfg" maps 0..127 linearly onto [min, max]; "crossfade" sets the
blocks a note's crossfade takes; "steps" picks among the compiled options.
A note-on of a pad crossfades to that pad's prompt. Learn mode:
`learn("cfg")` (or `learn({"to": "weight", "pad": 1})`) binds the next CC
moved to that target; `save(path)` writes the mapping.

Every control becomes the page's JSON message and goes through
lmdm_jax/serve/protocol.py and `lmdm live`'s command layer.
"""
from __future__ import annotations

import json
import threading
from typing import List, Optional

from lmdm_jax.serve import protocol
from lmdm_jax.serve.osc import apply

DEFAULT_MAP = {"channel": None,
               "pads": ["slow bach chorale for organ", "fast irish folk fiddle",
                        "ragtime piano joplin", "epic orchestral battle"],
               "cc": {"1": {"to": "cfg", "min": 0, "max": 8},
                      "21": {"to": "weight", "pad": 0},
                      "22": {"to": "weight", "pad": 1},
                      "23": {"to": "weight", "pad": 2},
                      "24": {"to": "weight", "pad": 3},
                      "25": {"to": "crossfade", "min": 1, "max": 16},
                      "26": {"to": "steps"}},
               "notes": {"60": {"pad": 0}, "62": {"pad": 1},
                         "64": {"pad": 2}, "65": {"pad": 3},
                         "67": {"to": "drop"}}}
TARGETS = ("cfg", "weight", "crossfade", "steps", "seed")


def check_map(m: dict) -> dict:
  """Validates a mapping document; -> it (ValueError naming the entry)."""
  if not isinstance(m, dict):
    raise ValueError("a MIDI map is a JSON object")
  pads = m.get("pads", [])
  if not isinstance(pads, list) or not all(isinstance(p, str) and p.strip()
                                           for p in pads):
    raise ValueError("pads must be a list of prompt texts")
  ch = m.get("channel")
  if ch is not None and (not isinstance(ch, int) or not 0 <= ch <= 15):
    raise ValueError(f"channel must be null or 0..15, got {ch!r}")
  for cc, t in m.get("cc", {}).items():
    if not cc.isdigit() or not 0 <= int(cc) <= 127:
      raise ValueError(f"cc {cc!r}: controller numbers are 0..127")
    if not isinstance(t, dict) or t.get("to") not in TARGETS:
      raise ValueError(f"cc {cc}: 'to' must be one of {TARGETS}")
    if t["to"] == "weight" and not (isinstance(t.get("pad"), int)
                                    and 0 <= t["pad"] < len(pads)):
      raise ValueError(f"cc {cc}: weight needs a pad in 0..{len(pads) - 1}")
  for note, t in m.get("notes", {}).items():
    if not note.isdigit() or not 0 <= int(note) <= 127:
      raise ValueError(f"note {note!r}: note numbers are 0..127")
    if "pad" in t and not (isinstance(t["pad"], int)
                           and 0 <= t["pad"] < len(pads)):
      raise ValueError(f"note {note}: pad must be in 0..{len(pads) - 1}")
    if "pad" not in t and t.get("to") != "drop":
      raise ValueError(f"note {note}: give a pad or \"to\": \"drop\"")
  return m


class MidiBridge:
  """mido messages -> the engine. `handle` is mido's input callback."""

  def __init__(self, engine, mapping: Optional[dict] = None, log=print):
    self.engine, self.log = engine, log
    self.map = check_map(json.loads(json.dumps(mapping or DEFAULT_MAP)))
    pads = self.map.get("pads", [])
    self.weights: List[float] = [1.0] + [0.0] * (len(pads) - 1) if pads \
        else []
    self.crossfade_blocks = 4
    self.errors: List[str] = []
    self._learn = None
    self._lock = threading.Lock()
    self.port = None

  @classmethod
  def open(cls, engine, port_name: str, map_path: Optional[str], log=print):
    import mido
    mapping = None
    if map_path:
      with open(map_path) as f:
        mapping = json.load(f)
    bridge = cls(engine, mapping, log)
    try:
      bridge.port = mido.open_input(port_name, callback=bridge.handle)
    except (OSError, IOError, ImportError) as e:
      raise ValueError(f"cannot open MIDI input {port_name!r}: {e} (needs "
                       f"python-rtmidi; ports: "
                       f"{_safe_names(mido)})") from e
    log(f"MIDI from {port_name!r}")
    return bridge

  def learn(self, target) -> None:
    """The next CC moved is bound to `target` ("cfg", or a dict)."""
    t = {"to": target} if isinstance(target, str) else dict(target)
    check_map({"pads": self.map.get("pads", []), "cc": {"0": t}})
    self._learn = t

  def save(self, path: str) -> None:
    with open(path, "w") as f:
      json.dump(self.map, f, indent=1)

  def _send(self, msg: dict) -> None:
    def reply(r):
      if r.get("type") == "error":
        self.errors.append(r["reason"])
        self.log(f"MIDI refused: {r['reason']}")
    try:
      apply(self.engine, msg, reply)
    except protocol.ProtocolError as e:
      self.engine.refused += 1
      self.errors.append(str(e))
      self.log(f"MIDI refused: {e}")

  def handle(self, message) -> None:
    """One mido message. Never raises (the music goes on)."""
    try:
      self._handle(message)
    except Exception as e:          # noqa: BLE001
      self.errors.append(repr(e))

  def _handle(self, message) -> None:
    ch = self.map.get("channel")
    if ch is not None and getattr(message, "channel", ch) != ch:
      return
    if message.type == "control_change":
      key = str(message.control)
      with self._lock:
        if self._learn is not None:
          self.map.setdefault("cc", {})[key] = self._learn
          self.log(f"MIDI learn: CC {key} -> {self._learn}")
          self._learn = None
      t = self.map.get("cc", {}).get(key)
      if t is not None:
        self._cc(t, message.value / 127.0)
    elif message.type == "note_on" and message.velocity > 0:
      t = self.map.get("notes", {}).get(str(message.note))
      if t is None:
        return
      if t.get("to") == "drop":
        self._send({"type": "drop"})
      else:
        self._send({"type": "crossfade", "blocks": self.crossfade_blocks,
                    "prompts": {self.map["pads"][t["pad"]]: 1.0}})

  def _cc(self, t: dict, x: float) -> None:
    lo, hi = t.get("min", 0.0), t.get("max", 1.0)
    if t["to"] == "cfg":
      self._send({"type": "cfg", "scale": round(lo + x * (hi - lo), 3)})
    elif t["to"] == "weight":
      self.weights[t["pad"]] = x
      mix = {p: w for p, w in zip(self.map["pads"], self.weights) if w > 0}
      if mix:
        self._send({"type": "mix", "prompts": mix})
    elif t["to"] == "crossfade":
      self.crossfade_blocks = max(1, int(round(lo + x * (hi - lo))))
    elif t["to"] == "steps":
      opts = sorted(self.engine.session.streams)
      self._send({"type": "steps",
                  "k": opts[min(len(opts) - 1, int(x * len(opts)))]})
    elif t["to"] == "seed":
      self._send({"type": "seed", "n": int(x * 127)})

  def close(self) -> None:
    if self.port is not None:
      self.port.close()


def _safe_names(mido) -> list:
  try:
    return mido.get_input_names()
  except Exception:                 # noqa: BLE001
    return []
