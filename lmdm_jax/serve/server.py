"""`lmdm serve`: the browser instrument's server (aiohttp; the command
line is lmdm_jax/serve/cli.py).

Serves one page (lmdm_jax/serve/static: no CDN, no build step, no network
at run time) and one WebSocket, /ws, on which the page receives the audio
(binary frames: int32 header [block, channels, samples, sequence] then
float32 planar samples) and JSON text (info, stats, acks, errors), and
sends its controls as JSON (lmdm_jax/serve/protocol.py).

Safety: binds 127.0.0.1 by default; any other --host needs --token, which
the page and the socket must give (?token=...). The socket refuses an
Origin that is not this server's, and without a token both refuse a Host
that is not a loopback name (DNS rebinding). Messages are size-limited
(protocol.MAX_MESSAGE_BYTES, the socket closes on larger frames), checked (types, fields, finite numbers),
every refusal answered with its reason; the music never stops for a bad
message. One page controls at a time (the first; `{"type": "control"}`
takes over); the others listen to the same stream.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import ipaddress
import json
import os
import struct
import threading
from typing import Optional, Set
from urllib.parse import urlparse

import numpy as np

from lmdm_jax.serve import protocol

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
FRAME_HEADER = struct.Struct("<iiii")     # block, channels, samples, seq


def is_loopback(host: str) -> bool:
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def check_bind(host: str, token: Optional[str]) -> None:
  """Refuses a non-loopback bind without a token (anyone on the network
  could otherwise play, and steer, the instrument)."""
  if not is_loopback(host) and not token:
    raise ValueError(f"--host {host} is reachable from other machines: "
                     f"give --token SECRET (the page then needs "
                     f"?token=SECRET)")
  if token is not None and len(token) < 8:
    raise ValueError("--token must have at least 8 characters")


class Client:
  def __init__(self, ws, controller: bool, engine):
    self.ws, self.engine = ws, engine
    self.controller = controller
    self.queue: "asyncio.Queue" = asyncio.Queue(maxsize=256)
    self.dropped = 0


class Server:
  """The aiohttp app around an `Engine`; `start_in_thread` for tests."""

  def __init__(self, engine, host: str = "127.0.0.1", port: int = 8710,
               token: Optional[str] = None, log=print):
    check_bind(host, token)
    self.engine, self.host, self.port, self.token = engine, host, port, token
    self.log = log
    self.clients: Set[Client] = set()
    self.loop: Optional[asyncio.AbstractEventLoop] = None
    self._seq = 0
    self._runner = None
    self._thread: Optional[threading.Thread] = None
    self._ready = threading.Event()
    self.refusals = []           # (reason, remote) for tests and the log
    # --max-sessions: a page may ask for its own session (`{"type":
    # "session"}`) while fewer than max_sessions play; make_engine() builds
    # it (the compiled programs are shared: nothing compiles).
    self.max_sessions = 1
    self.make_engine = None
    self.engines = [engine]
    self._pool = concurrent.futures.ThreadPoolExecutor(1)

  # -- audio out --------------------------------------------------------------
  def sink(self, audio: np.ndarray, block: int, engine=None) -> None:
    """Player thread -> the pages of its engine (never blocks the audio
    clock)."""
    if self.loop is None or not self.clients:
      return
    self._seq += 1
    data = FRAME_HEADER.pack(block, audio.shape[0], audio.shape[1],
                             self._seq) + np.ascontiguousarray(
                                 audio, np.float32).tobytes()
    self.loop.call_soon_threadsafe(self._broadcast, data,
                                   engine or self.engine)

  def _sink_for(self, engine):
    return lambda audio, block: self.sink(audio, block, engine)

  def _broadcast(self, data, engine) -> None:
    for c in list(self.clients):
      if c.engine is not engine:
        continue
      try:
        c.queue.put_nowait(data)
      except asyncio.QueueFull:      # a stalled page loses audio, not us
        c.dropped += 1

  def send_json(self, client: Client, msg: dict) -> None:
    """Thread-safe: queues a JSON message to one page."""
    text = json.dumps(msg)
    if self.loop is not None:
      self.loop.call_soon_threadsafe(self._put, client, text)

  def _put(self, client: Client, text: str) -> None:
    try:
      client.queue.put_nowait(text)
    except asyncio.QueueFull:
      client.dropped += 1

  # -- HTTP -------------------------------------------------------------------
  def _token_ok(self, given: Optional[str]) -> bool:
    if self.token is None:
      return True
    return given is not None and hmac.compare_digest(given, self.token)

  def _host_ok(self, request) -> bool:
    """Without a token (a loopback bind) the Host must be a loopback name:
    a web page that re-binds its own DNS name to 127.0.0.1 (DNS
    rebinding) would otherwise pass the Origin check as "same origin"."""
    if self.token is not None:
      return True
    host = urlparse("//" + request.headers.get("Host", "")).hostname or ""
    return is_loopback(host)

  def _origin_ok(self, request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
      return True       # not a browser (OSC bridges, scripts, tests)
    o = urlparse(origin)
    host = request.headers.get("Host", "")
    return o.scheme in ("http", "https") and o.netloc == host

  def _refuse(self, reason: str, request) -> None:
    self.refusals.append((reason, request.remote))
    self.log(f"refused {request.remote}: {reason}")

  async def index(self, request):
    from aiohttp import web
    if not self._host_ok(request):
      self._refuse(f"Host {request.headers.get('Host')!r} is not loopback",
                   request)
      return web.Response(status=403, text="403: open this page at "
                          "127.0.0.1 or localhost\n")
    if not self._token_ok(request.query.get("token")):
      self._refuse("page without the right token", request)
      return web.Response(status=403, text="403: this server needs "
                          "?token=... (given to `lmdm serve --token`)\n")
    return web.FileResponse(os.path.join(STATIC, "index.html"),
                            headers={"Cache-Control": "no-store"})

  async def log_json(self, request):
    from aiohttp import web
    if not self._token_ok(request.query.get("token")):
      return web.Response(status=403, text="403: token\n")
    return web.json_response(self.engine.control_log())

  async def websocket(self, request):
    from aiohttp import web
    if not self._host_ok(request):
      self._refuse(f"WebSocket Host {request.headers.get('Host')!r} is not "
                   f"loopback", request)
      return web.Response(status=403, text="403: Host\n")
    if not self._origin_ok(request):
      self._refuse(f"WebSocket from Origin "
                   f"{request.headers.get('Origin')!r}", request)
      return web.Response(status=403, text="403: wrong Origin\n")
    if not self._token_ok(request.query.get("token")):
      self._refuse("WebSocket without the right token", request)
      return web.Response(status=403, text="403: token\n")
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_MESSAGE_BYTES,
                               heartbeat=20)
    await ws.prepare(request)
    client = Client(ws, controller=not any(
        c.controller for c in self.clients if c.engine is self.engine),
        engine=self.engine)
    self.clients.add(client)
    sender = asyncio.ensure_future(self._sender(client))
    self.send_json(client, dict(self.engine.info(),
                                controller=client.controller,
                                own_session=False))
    try:
      async for m in ws:
        if m.type == web.WSMsgType.TEXT:
          self._on_text(client, m.data)
        elif m.type == web.WSMsgType.BINARY:
          self._on_binary(client, m.data)
        elif m.type == web.WSMsgType.ERROR:
          self._refuse(f"socket error: {ws.exception()}", request)
          break
    finally:
      self.clients.discard(client)
      sender.cancel()
      peers = [c for c in self.clients if c.engine is client.engine]
      if client.controller and peers:            # hand control on
        peers[0].controller = True
        self.send_json(peers[0], {"type": "controller", "controller": True})
      if not peers and client.engine is not self.engine:
        self.engines.remove(client.engine)       # its own session ends
        self._pool.submit(client.engine.stop)
    if ws.close_code == 1009 and not any(
        "exceeds limit" in r for r, _ in self.refusals[-1:]):
      self._refuse("message too big (socket closed, 1009)", request)
    return ws

  async def _sender(self, client: Client) -> None:
    ws = client.ws
    try:
      while not ws.closed:
        item = await client.queue.get()
        if isinstance(item, bytes):
          await ws.send_bytes(item)
        else:
          await ws.send_str(item)
    except (ConnectionError, asyncio.CancelledError, RuntimeError):
      pass

  def _error(self, client: Client, tag, reason: str) -> None:
    client.engine.refused += 1
    self.send_json(client, {"type": "error", "id": tag, "reason": reason})

  def _on_text(self, client: Client, raw: str) -> None:
    """One message from a page: never raises (a bad message is answered
    with its reason; the music goes on)."""
    tag = None
    try:
      msg = protocol.decode(raw)
      tag = msg.get("id") if isinstance(msg.get("id"), (int, str)) else None
      lines = protocol.to_lines(msg)
      kind = msg["type"]
      if kind == "hello":
        return
      if kind == "session":
        self._pool.submit(self._guard, client, tag, self._own_session,
                          client, tag)
        return
      if kind == "control":
        for c in self.clients:
          if c.controller and c is not client and c.engine is client.engine:
            c.controller = False
            self.send_json(c, {"type": "controller", "controller": False})
        client.controller = True
        self.send_json(client, {"type": "controller", "controller": True,
                                "id": tag})
        return
      if not client.controller and kind != "status":
        raise protocol.ProtocolError("this page listens; another controls "
                                     "(send {\"type\": \"control\"})")
      if kind in ("pause", "resume"):
        client.engine.pause(kind == "pause")
        self.send_json(client, {"type": "ack", "id": tag, "message": kind,
                                "block": client.engine.next_block()})
        return
      if kind in ("sketch", "input"):
        reply = lambda r: self.send_json(client, r)    # noqa: E731
        if kind == "sketch":
          self._pool.submit(self._guard, client, tag, client.engine.set_sketch,
                            msg, reply, tag)
        else:
          self._pool.submit(self._guard, client, tag, client.engine.set_input,
                            msg["as"], reply, tag)
        return
      # Applying takes the player's lock, which generation holds while the
      # model computes: one worker thread (in order) keeps the event loop,
      # and so every page's audio, free of that wait.
      self._pool.submit(self._submit, client, lines, tag)
    except protocol.ProtocolError as e:
      self._error(client, tag, str(e))
    except Exception as e:           # noqa: BLE001  never stop the music
      self._error(client, tag, f"internal error: {e!r}")

  def _on_binary(self, client: Client, data: bytes) -> None:
    """Input audio from the controlling page (mic or file)."""
    try:
      if not client.controller:
        raise protocol.ProtocolError("this page listens; its input is not "
                                     "used")
      client.engine.push_input(data)
    except protocol.ProtocolError as e:
      self._error(client, None, str(e))
    except Exception as e:           # noqa: BLE001
      self._error(client, None, f"internal error: {e!r}")

  def _guard(self, client: Client, tag, fn, *a) -> None:
    try:
      fn(*a)
    except protocol.ProtocolError as e:
      self._error(client, tag, str(e))
    except Exception as e:           # noqa: BLE001  never stop the music
      self._error(client, tag, f"internal error: {e!r}")

  def _submit(self, client: Client, lines, tag) -> None:
    try:
      for line in lines:
        client.engine.submit(line, lambda r: self.send_json(client, r), tag)
    except protocol.ProtocolError as e:
      self._error(client, tag, str(e))
    except Exception as e:           # noqa: BLE001  never stop the music
      self._error(client, tag, f"internal error: {e!r}")

  def _own_session(self, client: Client, tag) -> None:
    """Moves `client` to a session of its own (worker thread)."""
    if client.engine is not self.engine:
      raise protocol.ProtocolError("this page already has its own session")
    if self.make_engine is None or len(self.engines) >= self.max_sessions:
      raise protocol.ProtocolError(
          f"all {self.max_sessions} session(s) are playing (--max-sessions);"
          f" this page stays on the shared one")
    engine = self.make_engine()
    engine.player.sink = self._sink_for(engine)
    engine.player.paused = True
    engine.start()
    self.engines.append(engine)
    was = client.controller
    client.engine, client.controller = engine, True
    if was:                               # hand the shared one on
      peers = [c for c in self.clients if c.engine is self.engine]
      if peers:
        peers[0].controller = True
        self.send_json(peers[0], {"type": "controller", "controller": True})
    self.send_json(client, dict(engine.info(), controller=True,
                                own_session=True, id=tag))

  async def _stats(self) -> None:
    while True:
      await asyncio.sleep(0.25)
      for engine in list(self.engines):
        clients = [c for c in self.clients if c.engine is engine]
        if clients:
          text = json.dumps(dict(engine.stats(), listeners=len(clients),
                                 sessions=len(self.engines)))
          for c in clients:
            self._put(c, text)

  # -- running ----------------------------------------------------------------
  def app(self):
    from aiohttp import web
    app = web.Application(client_max_size=protocol.MAX_MESSAGE_BYTES)
    app.router.add_get("/", self.index)
    app.router.add_get("/ws", self.websocket)
    app.router.add_get("/log.json", self.log_json)
    app.router.add_static("/static/", STATIC, show_index=False)
    return app

  async def _start(self) -> None:
    from aiohttp import web
    self.loop = asyncio.get_running_loop()
    self._runner = web.AppRunner(self.app(), access_log=None)
    await self._runner.setup()
    site = web.TCPSite(self._runner, self.host, self.port)
    await site.start()
    if self.port == 0:
      self.port = site._server.sockets[0].getsockname()[1]
    self._stats_task = asyncio.ensure_future(self._stats())
    self.engine.player.sink = self._sink_for(self.engine)

  def url(self) -> str:
    host = f"[{self.host}]" if ":" in self.host else self.host
    return f"http://{host}:{self.port}/" + (f"?token={self.token}"
                                             if self.token else "")

  def start_in_thread(self) -> None:
    """Serves from a daemon thread (the engine must be started apart)."""
    def main():
      loop = asyncio.new_event_loop()
      asyncio.set_event_loop(loop)
      loop.run_until_complete(self._start())
      self._ready.set()
      loop.run_forever()
    self._thread = threading.Thread(target=main, daemon=True)
    self._thread.start()
    if not self._ready.wait(30):
      raise RuntimeError("the server did not start in 30 s")

  def stop_thread(self) -> None:
    if self.loop is None:
      return
    async def close():
      self._stats_task.cancel()
      for c in list(self.clients):
        await c.ws.close()
      await self._runner.cleanup()
    asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
    self.loop.call_soon_threadsafe(self.loop.stop)
    self._thread.join(10)
    self._pool.shutdown(wait=True)
