"""OSC (UDP, python-osc) into the same session as the page.

Address space (every message becomes the page's JSON message, checked by
lmdm_jax/serve/protocol.py and applied by `lmdm live`'s command layer):

  /lmdm/prompt   s              play TEXT alone                 (p TEXT)
  /lmdm/mix      s f [s f ...]  weighted mix                    (mix A=w; ..)
  /lmdm/crossfade s [i]  or  s f [s f ...] i
                                crossfade over i blocks (default 4)
  /lmdm/cfg      f [f]          guidance scale [, rescale]
  /lmdm/steps    i              steps per block (compiled options only)
  /lmdm/seed     i              noise seed
  /lmdm/drop     [i]            drop the oldest i context frames
  /lmdm/pause    /lmdm/resume
  /lmdm/cmd      s              any `lmdm live` line

OSC has no reply channel here: a refused message is logged with its reason
and counted (`errors`, the page's "refused" meter); the music goes on.
"""
from __future__ import annotations

import math
import threading
from typing import List, Tuple

from lmdm_jax.serve import protocol

ADDRESSES = ("prompt", "mix", "crossfade", "cfg", "steps", "seed", "drop",
             "pause", "resume", "cmd")


def to_message(address: str, args: tuple) -> dict:
  """An OSC message -> the page's JSON message (ProtocolError if bad)."""
  if not address.startswith("/lmdm/"):
    raise protocol.ProtocolError(f"unknown OSC address {address!r} (the "
                                 f"space is /lmdm/...)")
  name = address[len("/lmdm/"):]
  if name not in ADDRESSES:
    raise protocol.ProtocolError(f"unknown OSC address {address!r}; known: "
                                 f"{['/lmdm/' + a for a in ADDRESSES]}")
  for a in args:
    if isinstance(a, float) and not math.isfinite(a):
      raise protocol.ProtocolError(f"{address}: arguments must be finite")

  def pairs(items) -> dict:
    if len(items) % 2 or not items:
      raise protocol.ProtocolError(f"{address} takes TEXT WEIGHT pairs")
    return {items[i]: items[i + 1] for i in range(0, len(items), 2)}
  a = list(args)
  if name == "prompt":
    return {"type": "prompt", "text": a[0] if len(a) == 1 else None}
  if name == "mix":
    return {"type": "mix", "prompts": pairs(a)}
  if name == "crossfade":
    blocks = a.pop() if a and isinstance(a[-1], int) and len(a) % 2 == 0 \
        else 4
    if len(a) == 1:
      return {"type": "crossfade", "prompts": {a[0]: 1.0}, "blocks": blocks}
    return {"type": "crossfade", "prompts": pairs(a), "blocks": blocks}
  if name == "cfg":
    if not 1 <= len(a) <= 2:
      raise protocol.ProtocolError("/lmdm/cfg takes SCALE [RESCALE]")
    msg = {"type": "cfg", "scale": a[0]}
    if len(a) == 2:
      msg["rescale"] = a[1]
    return msg
  if name in ("steps", "seed"):
    if len(a) != 1:
      raise protocol.ProtocolError(f"/lmdm/{name} takes one integer")
    return {"type": name, "k" if name == "steps" else "n": a[0]}
  if name == "drop":
    return {"type": "drop", **({"frames": a[0]} if a else {})}
  if name == "cmd":
    return {"type": "cmd", "line": a[0] if len(a) == 1 else None}
  return {"type": name}


def apply(engine, msg: dict, reply) -> None:
  """Applies a checked page-style message to the engine (OSC, MIDI)."""
  lines = protocol.to_lines(msg)
  if msg["type"] in ("pause", "resume"):
    engine.pause(msg["type"] == "pause")
    return
  for line in lines:
    engine.submit(line, reply)


class OscBridge:
  """A UDP OSC server on its own thread, feeding `engine`."""

  def __init__(self, engine, host: str = "127.0.0.1", port: int = 9000,
               log=print):
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer
    self.engine, self.log = engine, log
    self.errors: List[Tuple[str, str]] = []
    self.received = 0
    d = Dispatcher()
    d.set_default_handler(self.handle)
    self.server = ThreadingOSCUDPServer((host, port), d)
    self.port = self.server.server_address[1]
    self._thread = threading.Thread(target=self.server.serve_forever,
                                    daemon=True)
    self._thread.start()
    log(f"OSC on udp://{host}:{self.port} (/lmdm/...)")

  def _reply(self, r: dict) -> None:
    if r.get("type") == "error":
      self.errors.append(("apply", r["reason"]))
      self.log(f"OSC refused: {r['reason']}")

  def handle(self, address: str, *args) -> None:
    """Never raises: a refused message is logged and counted."""
    self.received += 1
    try:
      apply(self.engine, to_message(address, args), self._reply)
    except protocol.ProtocolError as e:
      self.engine.refused += 1
      self.errors.append((address, str(e)))
      self.log(f"OSC {address} refused: {e}")
    except Exception as e:            # noqa: BLE001  never stop the music
      self.engine.refused += 1
      self.errors.append((address, repr(e)))

  def close(self) -> None:
    self.server.shutdown()
    self.server.server_close()
