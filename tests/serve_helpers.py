"""A served session for the `lmdm serve` tests, and a WebSocket client."""
from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np


def serve_args(checkpoint=None, **kw):
  a = dict(checkpoint=checkpoint, steps=2, steps_options="2", cfg=None,
           prompt="slow bach chorale for organ", seed=0, buffer_blocks=2,
           drop_frames=0)
  a.update(kw)
  return argparse.Namespace(**a)


def start(checkpoint=None, **kw):
  """-> (engine, server), playing; stop with `stop`."""
  from lmdm_jax.serve.engine import build
  from lmdm_jax.serve.server import Server
  engine = build(serve_args(checkpoint, **kw), lambda s: None)
  server = Server(engine, port=0, log=lambda s: None)
  server.start_in_thread()
  engine.start()
  return engine, server


def stop(engine, server):
  server.stop_thread()
  return engine.stop()


def jit_cache_sizes(session):
  return {k: (st._init_state._cache_size(), st._block._cache_size())
          for k, st in session.streams.items()}


async def collect(ws, seconds: float, until=None):
  """Reads a socket for `seconds` (or until until(frames, msgs)):
  -> (audio frame headers [(block, channels, n, seq)], JSON messages)."""
  import aiohttp
  frames, msgs = [], []
  end = time.time() + seconds
  while time.time() < end:
    try:
      m = await ws.receive(timeout=max(0.01, end - time.time()))
    except asyncio.TimeoutError:
      break
    if m.type == aiohttp.WSMsgType.BINARY:
      frames.append(tuple(np.frombuffer(m.data[:16], "<i4")))
    elif m.type == aiohttp.WSMsgType.TEXT:
      msgs.append(json.loads(m.data))
    else:
      msgs.append({"type": "closed", "code": ws.close_code})
      break
    if until is not None and until(frames, msgs):
      break
  return frames, msgs
