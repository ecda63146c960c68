"""`lmdm serve` without a browser: the message protocol, hostile input on a
playing server (each refused with its reason, the stream plays on), one
controller and listeners, OSC datagrams and MIDI messages into the same
session. The browser itself: tests/serve/test_serve_browser.py."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from lmdm_jax.serve import protocol
from lmdm_jax.serve.server import check_bind
from lmdm_jax.live.commands import parse_command
from tests import serve_helpers as sh
from tests.live_helpers import make_smoke_package

aiohttp = pytest.importorskip("aiohttp")


# -- protocol (no model) --------------------------------------------------------
@pytest.mark.parametrize("raw, reason", [
    ("{nope", "malformed JSON"),
    ('{"type": "cfg", "scale": NaN}', "NaN is not a number"),
    ('{"type": "cfg", "scale": Infinity}', "Infinity is not a number"),
    ("[1, 2]", "a message is a JSON object"),
    ('"x"' + " " * protocol.MAX_MESSAGE_BYTES, "bytes; the limit is"),
])
def test_decode_refuses_with_a_reason(raw, reason):
  with pytest.raises(protocol.ProtocolError, match=reason):
    protocol.decode(raw)


@pytest.mark.parametrize("msg, reason", [
    ({"type": "boom"}, "unknown message type 'boom'"),
    ({"type": "cfg", "scale": 2, "volume": 11}, r"unknown fields \['volume'\]"),
    ({"type": "cfg"}, r"needs \['scale'\]"),
    ({"type": "cfg", "scale": "3"}, "scale must be a number, got str"),
    ({"type": "cfg", "scale": True}, "scale must be a number, got bool"),
    ({"type": "cfg", "scale": float("nan")}, "scale must be finite"),
    ({"type": "cfg", "scale": -1}, r"cfg scale must be in \[0, 25\]"),  # commands.py
    ({"type": "cfg", "scale": 1, "rescale": 2}, r"rescale must be in \[0, 1\]"),
    ({"type": "steps", "k": 2.5}, "k must be an integer"),
    ({"type": "seed", "n": 2**40}, "seed must fit in int32"),
    ({"type": "mix", "prompts": {"a": -1}}, r"must be in \[0, 1e\+06\]"),
    ({"type": "mix", "prompts": {"a": 0}}, "must not all be zero"),
    ({"type": "mix", "prompts": []}, "non-empty object"),
    ({"type": "prompt", "text": "a; b=1"}, "may not contain"),
    ({"type": "prompt", "text": 5}, "text must be a string"),
    ({"type": "crossfade", "prompts": {"a": 1}, "blocks": 0},
     r"blocks must be in \[1, 1000\]"),
    ({"type": "cmd", "line": "q"}, "cannot quit"),
    ({"type": "cmd", "line": "wait 3"}, "pages do not wait"),
    ({"type": "cmd", "line": "frobnicate"}, "unknown command"),
    ({"type": "cfg", "scale": 1, "id": {"x": 1}}, "id must be"),
])
def test_messages_are_refused_with_the_command_layers_reasons(msg, reason):
  with pytest.raises(protocol.ProtocolError, match=reason):
    protocol.to_lines(msg)


def test_messages_become_lines_the_terminal_parses_the_same():
  lines = protocol.to_lines({"type": "crossfade", "blocks": 3, "drop": True,
                             "prompts": {"slow organ": 0.25, "fast": 0.75}})
  assert [parse_command(x).name for x in lines] == ["x", "drop"]
  assert parse_command(lines[0]).args == ({"slow organ": 0.25,
                                           "fast": 0.75}, 3)
  (cfg,) = protocol.to_lines({"type": "cfg", "scale": 0.1 + 0.2})
  assert parse_command(cfg).args == (0.1 + 0.2, 0.0)       # exact, repr
  assert protocol.to_lines({"type": "pause"}) == []


def test_a_non_loopback_bind_needs_a_token():
  check_bind("127.0.0.1", None)
  check_bind("::1", None)
  with pytest.raises(ValueError, match="give --token"):
    check_bind("0.0.0.0", None)
  with pytest.raises(ValueError, match="at least 8"):
    check_bind("0.0.0.0", "short")
  check_bind("0.0.0.0", "long-enough-secret")


# -- a playing server ------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
  pkg = make_smoke_package(str(tmp_path_factory.mktemp("serve_pkg")))
  engine, server = sh.start(pkg, prompt="slow organ chorale")
  yield engine, server
  sh.stop(engine, server)


def run(coro):
  return asyncio.run(coro)


async def _session(server, **kw):
  s = aiohttp.ClientSession()
  ws = await s.ws_connect(server.url() + "ws", **kw)
  return s, ws


def test_hostile_input_is_refused_and_the_stream_plays_on(served):
  engine, server = served

  async def go():
    s, ws = await _session(server)
    frames, msgs = await sh.collect(ws, 30, lambda f, m: len(f) >= 20)
    assert msgs[0]["type"] == "info" and msgs[0]["controller"] is True
    assert len(frames) >= 20
    bad = ["{nope", '{"type": "cfg", "scale": NaN}',
           json.dumps({"type": "cfg", "scale": 2, "volume": 11, "id": 1}),
           json.dumps({"type": "cfg", "scale": "loud", "id": 2}),
           json.dumps({"type": "steps", "k": 64, "id": 3}),   # not compiled
           json.dumps([1, 2])]
    for raw in bad:
      await ws.send_str(raw)
    await ws.send_bytes(b"\x00" * 100)
    # 1,000 controls in a second: coalesced per block, never all applied.
    events0, coalesced0 = len(engine.app.events), engine.coalesced
    block0 = engine.next_block()
    t0 = time.time()
    for i in range(1000):
      await ws.send_str(json.dumps({"type": "cfg", "scale": 1 + i / 1000,
                                    "id": 100 + i}))
    assert time.time() - t0 < 5
    frames2, msgs2 = await sh.collect(ws, 20, lambda f, m: len(f) >= 40)
    errors = [m for m in msgs2 if m["type"] == "error"]
    reasons = " | ".join(m["reason"] for m in errors)
    for r in ("malformed JSON", "NaN", "unknown fields ['volume']",
              "scale must be a number, got str", "steps 64 was not compiled",
              "a message is a JSON object", "magic LMI1"):
      assert r in reasons, (r, reasons)
    assert len(frames2) >= 40, "the stream stopped"
    await ws.close()
    # A 10 MB frame: the socket is closed (1009), the server plays on.
    s2, ws2 = await _session(server)
    try:
      await ws2.send_str("x" * 10_000_000)
      await sh.collect(ws2, 10, lambda f, m: any(x["type"] == "closed"
                                                 for x in m))
      assert ws2.close_code == 1009
    except ConnectionError:
      pass                  # the server closed it while the frame was sent
    await s2.close()
    end = time.time() + 10
    while time.time() < end and not any(
        "too big" in r or "exceeds limit" in r for r, _ in server.refusals):
      await asyncio.sleep(0.05)
    s3, ws3 = await _session(server)
    frames3, _ = await sh.collect(ws3, 20, lambda f, m: len(f) >= 20)
    assert len(frames3) >= 20 and frames3[-1][0] >= frames[-1][0]
    await s3.close()
    await s.close()
    applied = [e for e in engine.app.events[events0:]
               if e["command"].startswith("cfg") and e["ok"]]
    blocks = engine.next_block() - block0
    return applied, blocks, coalesced0

  applied, blocks, coalesced0 = run(go())
  assert 1 <= len(applied) <= blocks + 2, (len(applied), blocks)
  assert engine.coalesced - coalesced0 >= 1000 - len(applied) - 5
  assert applied[-1]["command"] == f"cfg {1 + 999 / 1000!r} 0.0"
  assert engine.session.cfg_scale == pytest.approx(1.999)
  assert any("exceeds limit 65536" in r or "too big" in r
             for r, _ in server.refusals), server.refusals
  assert engine.player.error is None


def test_wrong_origin_and_missing_token_are_refused(served):
  engine, server = served
  from lmdm_jax.serve.server import Server

  async def go():
    async with aiohttp.ClientSession() as s:
      with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await s.ws_connect(server.url() + "ws",
                           headers={"Origin": "http://evil.example"})
      assert e.value.status == 403
      # DNS rebinding: evil.example resolving to 127.0.0.1 is same-origin
      # with itself, but not a loopback Host.
      evil = {"Host": f"evil.example:{server.port}",
              "Origin": f"http://evil.example:{server.port}"}
      with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await s.ws_connect(server.url() + "ws", headers=evil)
      assert e.value.status == 403
      async with s.get(server.url(), headers=evil) as r:
        assert r.status == 403
      ok = await s.ws_connect(server.url() + "ws", headers={
          "Origin": f"http://127.0.0.1:{server.port}"})
      await ok.close()
  run(go())
  assert any("Origin 'http://evil.example'" in r for r, _ in server.refusals)
  assert any("Host 'evil.example" in r for r, _ in server.refusals)

  secret = "correct-horse-battery"
  sink = engine.player.sink
  other = Server(engine, host="0.0.0.0", port=0, token=secret,
                 log=lambda s: None)
  other.start_in_thread()
  engine.player.sink = sink                  # the first server keeps playing

  async def go2():
    base = f"http://127.0.0.1:{other.port}/"
    async with aiohttp.ClientSession() as s:
      async with s.get(base) as r:
        assert r.status == 403 and "token" in await r.text()
      async with s.get(base + "?token=wrong-wrong-wrong") as r:
        assert r.status == 403
      async with s.get(base + f"?token={secret}") as r:
        assert r.status == 200 and "lmdm serve" in await r.text()
      with pytest.raises(aiohttp.WSServerHandshakeError):
        await s.ws_connect(base + "ws")
      ws = await s.ws_connect(base + f"ws?token={secret}")
      _, msgs = await sh.collect(ws, 5, lambda f, m: bool(m))
      assert msgs[0]["type"] == "info"
      await ws.close()
  try:
    run(go2())
  finally:
    other.stop_thread()
    engine.player.sink = sink
  assert engine.player.error is None


def test_a_second_page_listens_while_the_first_controls(served):
  engine, server = served

  async def go():
    s1, a = await _session(server)
    s2, b = await _session(server)
    _, ma = await sh.collect(a, 5, lambda f, m: bool(m))
    fb, mb = await sh.collect(b, 10, lambda f, m: len(f) >= 5 and bool(m))
    assert ma[0]["controller"] is True and mb[0]["controller"] is False
    assert len(fb) >= 5                      # the listener hears the stream
    await b.send_str(json.dumps({"type": "seed", "n": 5, "id": 1}))
    _, mb = await sh.collect(b, 5, lambda f, m: any(
        x["type"] == "error" for x in m))
    assert any("this page listens" in x.get("reason", "") for x in mb)
    await b.send_str(json.dumps({"type": "control", "id": 2}))
    _, ma = await sh.collect(a, 5, lambda f, m: any(
        x["type"] == "controller" for x in m))
    assert any(x["type"] == "controller" and x["controller"] is False
               for x in ma)
    await b.send_str(json.dumps({"type": "seed", "n": 5, "id": 3}))
    _, mb = await sh.collect(b, 10, lambda f, m: any(
        x["type"] == "ack" for x in m))
    ack = [x for x in mb if x["type"] == "ack"][0]
    for s in (s1, s2):
      await s.close()
    return ack
  ack = run(go())
  assert ack["id"] == 3 and engine.session.seed == 5
  sh_wait_block(engine, ack["block"] + 1)
  assert engine.session.log[ack["block"]]["seed"] == 5


def sh_wait_block(engine, block, timeout=60):
  end = time.time() + timeout
  while engine.next_block() <= block and time.time() < end:
    time.sleep(0.05)
  assert engine.next_block() > block


def test_pause_holds_the_stream_and_resume_continues_it(served):
  engine, server = served

  async def go():
    s, ws = await _session(server)
    await sh.collect(ws, 5, lambda f, m: bool(m))
    await ws.send_str(json.dumps({"type": "pause"}))
    await asyncio.sleep(0.3)
    block, under = engine.next_block(), engine.player.underruns
    frames, _ = await sh.collect(ws, 2.5)
    assert frames and all(f[0] == -2 for f in frames[5:])
    paused_block = engine.next_block()
    await ws.send_str(json.dumps({"type": "resume"}))
    frames, _ = await sh.collect(ws, 30, lambda f, m: any(
        x[0] >= 0 for x in f[3:]))
    await s.close()
    return block, under, paused_block, frames
  block, under, paused_block, frames = run(go())
  # Paused: the generation thread fills the buffer, then waits.
  assert paused_block <= block + 3
  assert any(f[0] >= 0 for f in frames)


# -- OSC and MIDI ----------------------------------------------------------------
def test_osc_datagrams_change_the_session(served):
  pytest.importorskip("pythonosc")
  from pythonosc.udp_client import SimpleUDPClient
  from lmdm_jax.serve.osc import OscBridge
  engine, _ = served
  bridge = OscBridge(engine, "127.0.0.1", 0, log=lambda s: None)
  try:
    c = SimpleUDPClient("127.0.0.1", bridge.port)
    refused0 = engine.refused
    c.send_message("/lmdm/cfg", [2.75])
    c.send_message("/lmdm/mix", ["slow organ", 0.25, "fast folk tune", 0.75])
    c.send_message("/lmdm/cfg", [float("nan")])
    c.send_message("/lmdm/nope", [1])
    c.send_message("/lmdm/steps", [99])
    end = time.time() + 30
    while time.time() < end and (len(bridge.errors) < 3 or
                                 engine.session.cfg_scale != 2.75):
      time.sleep(0.05)
  finally:
    bridge.close()
  assert engine.session.cfg_scale == 2.75
  assert engine.session.prompts == {"slow organ": 0.25,
                                    "fast folk tune": 0.75}
  reasons = " | ".join(r for _, r in bridge.errors)
  assert "finite" in reasons and "unknown OSC address" in reasons
  assert "steps 99 was not compiled" in reasons
  assert engine.refused - refused0 >= 3
  ev = [e for e in engine.app.events if e["command"].startswith("cfg 2.75")]
  sh_wait_block(engine, ev[-1]["block"] + 1)
  assert engine.session.log[ev[-1]["block"]]["cfg_scale"] == 2.75


def test_midi_messages_change_the_session_and_learn(served, tmp_path):
  mido = pytest.importorskip("mido")
  from lmdm_jax.serve.midi import MidiBridge, check_map
  engine, _ = served
  bridge = MidiBridge(engine, {
      "pads": ["slow organ", "fast folk tune"],
      "cc": {"1": {"to": "cfg", "min": 0, "max": 8},
             "3": {"to": "weight", "pad": 1}},
      "notes": {"60": {"pad": 0}, "62": {"pad": 1}}}, log=lambda s: None)

  def settle(cond):
    end = time.time() + 30
    while not cond() and time.time() < end:
      time.sleep(0.05)
    assert cond()
  bridge.handle(mido.Message("control_change", control=1, value=127))
  settle(lambda: engine.session.cfg_scale == 8.0)
  bridge.handle(mido.Message("note_on", note=62, velocity=100))
  settle(lambda: any(e["command"].startswith("x fast folk tune")
                     and e["ok"] for e in engine.app.events))
  bridge.learn({"to": "seed"})
  bridge.handle(mido.Message("control_change", control=7, value=42))
  assert bridge.map["cc"]["7"] == {"to": "seed"}
  bridge.handle(mido.Message("control_change", control=7, value=11))
  settle(lambda: engine.session.seed == 11)
  bridge.save(str(tmp_path / "map.json"))
  assert check_map(json.load(open(tmp_path / "map.json")))["cc"]["7"]
  with pytest.raises(ValueError, match="pad must be in"):
    check_map({"pads": ["a"], "notes": {"60": {"pad": 3}}})
  assert bridge.errors == []


def test_input_frames_are_checked():
  import numpy as np
  hdr = lambda ch, n, magic=protocol.INPUT_MAGIC: np.array(  # noqa: E731
      [magic, ch, n, 0], "<i4").tobytes()
  x = np.linspace(-2, 2, 64, dtype="<f4")
  got = protocol.input_frame(hdr(1, 64) + x.tobytes(), 1)
  assert got.shape == (1, 64) and got.max() == 1.0          # clipped
  bad = [(hdr(1, 64, 7) + x.tobytes(), "magic LMI1"),
         (hdr(2, 32) + x.tobytes(), "1 channel"),
         (hdr(1, 65) + x.tobytes(), "the length its header says"),
         (hdr(1, 64) + np.full(64, np.nan, "<f4").tobytes(), "finite"),
         (b"\x00" * 8, "not an input frame"),
         (hdr(1, 40000) + b"\x00" * 160000, "not an input frame")]
  for data, reason in bad:
    with pytest.raises(protocol.ProtocolError, match=reason):
      protocol.input_frame(data, 1)


def test_sketch_and_input_are_refused_on_a_model_without_controls(served):
  engine, server = served

  async def go():
    s, ws = await _session(server)
    await sh.collect(ws, 5, lambda f, m: bool(m))
    await ws.send_str(json.dumps({"type": "input", "as": "partner",
                                  "id": "i"}))
    await ws.send_str(json.dumps({"type": "sketch", "id": "s",
                                  "curves": {"loudness": [0.5]}}))
    await ws.send_bytes(np_frame())
    _, msgs = await sh.collect(ws, 10, lambda f, m: sum(
        x["type"] == "error" for x in m) >= 3)
    await s.close()
    return {m.get("id"): m["reason"] for m in msgs if m["type"] == "error"}
  errs = run(go())
  assert "no partner control" in errs["i"]
  assert "unknown sketch control 'loudness'" in errs["s"]
  assert "no input is on" in errs[None]
  assert engine.player.error is None


def np_frame():
  import numpy as np
  return np.array([protocol.INPUT_MAGIC, 1, 16, 0], "<i4").tobytes() + \
      np.zeros(16, "<f4").tobytes()


def test_a_page_gets_its_own_session_up_to_max_sessions(served):
  engine, server = served
  server.max_sessions, server.make_engine = 2, engine.another

  async def go():
    s1, a = await _session(server)
    s2, b = await _session(server)
    s3, c = await _session(server)
    await sh.collect(a, 5, lambda f, m: bool(m))
    await b.send_str(json.dumps({"type": "session", "id": "own"}))
    _, mb = await sh.collect(b, 120, lambda f, m: any(
        x.get("own_session") for x in m))
    info = [x for x in mb if x.get("own_session")][0]
    assert info["controller"] is True and info["id"] == "own"
    assert len(server.engines) == 2
    mine = server.engines[1]
    await b.send_str(json.dumps({"type": "resume"}))
    await b.send_str(json.dumps({"type": "seed", "n": 99, "id": 1}))
    fb, mb = await sh.collect(b, 60, lambda f, m: sum(
        x[0] >= 1 for x in f) >= 3 and any(x.get("id") == 1 for x in m))
    await c.send_str(json.dumps({"type": "session", "id": "c"}))
    _, mc = await sh.collect(c, 30, lambda f, m: any(
        x.get("id") == "c" for x in m))
    await s2.close()                     # its own session ends with it
    end = time.time() + 30
    while len(server.engines) > 1 and time.time() < end:
      await asyncio.sleep(0.1)
    for s in (s1, s3):
      await s.close()
    return mine, fb, mb, mc
  try:
    mine, fb, mb, mc = run(go())
  finally:
    server.max_sessions, server.make_engine = 1, None
  assert mine is not engine and mine.session.seed == 99
  assert engine.session.seed != 99            # the shared one is untouched
  assert sum(f[0] >= 1 for f in fb) >= 3      # it plays its own blocks
  assert [x for x in mb if x.get("id") == 1][0]["type"] == "ack"
  err = [x for x in mc if x.get("id") == "c"][0]
  assert err["type"] == "error" and "all 2 session(s)" in err["reason"]
  assert server.engines == [engine]
  assert engine.player.error is None
