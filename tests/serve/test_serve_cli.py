"""`lmdm serve` as a user runs it: argument checks, and a served session
that a socket plays, steers and stops (SIGINT), writing its control log."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests import serve_helpers as sh
from tests.xla_flags import subprocess_env
from tests.live_helpers import REPO, make_smoke_package

aiohttp = pytest.importorskip("aiohttp")


_STARTED = []


def lmdm(*argv, **kw):
  env = subprocess_env(PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  p = subprocess.Popen([sys.executable, "-m", "lmdm_jax.cli", "serve",
                        *argv], env=env, stderr=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True, **kw)
  _STARTED.append(p)
  return p


@pytest.fixture(autouse=True)
def _no_server_outlives_its_test():
  """A test that fails (a timeout, an assert) before stopping its server
  must not leave it playing: one left from a failed run kept a core busy
  for an hour."""
  yield
  while _STARTED:
    p = _STARTED.pop()
    if p.poll() is None:
      p.kill()
      p.communicate()


@pytest.mark.parametrize("argv, reason", [
    (["--host", "0.0.0.0"], "give --token"),
    (["--host", "0.0.0.0", "--token", "abc"], "at least 8"),
    (["--port", "70000"], r"--port must be in \[0, 65535\]"),
    (["--cfg", "nan"], "--cfg must be finite"),
    (["--out", "x.mp3"], "--out must name a .wav file"),
    (["--midi-map", "/no/such.json"], "no such file"),
])
def test_bad_arguments_exit_2_with_one_line(argv, reason):
  p = lmdm(*argv)
  out, err = p.communicate(timeout=120)
  assert p.returncode == 2, err
  assert re.search(reason, err), err


@pytest.mark.slow
def test_serve_plays_to_a_socket_and_stops_on_sigint(tmp_path):
  pkg = make_smoke_package(str(tmp_path / "pkg"))
  log_path = str(tmp_path / "log.json")
  p = lmdm("--checkpoint", pkg, "--port", "0", "--steps-options", "2",
           "--steps", "2", "--prompt", "slow organ", "--log", log_path)
  lines = []
  url = None
  end = time.time() + 240
  while time.time() < end and url is None:
    line = p.stderr.readline()
    if not line:
      break
    lines.append(line)
    m = re.search(r"open (http://\S+) and press Play", line)
    url = m and m.group(1)
  assert url, "".join(lines)

  async def go():
    async with aiohttp.ClientSession() as s:
      async with s.get(url) as r:
        assert r.status == 200 and "static/app.js" in await r.text()
      async with s.get(url + "static/worklet.js") as r:
        assert r.status == 200 and "registerProcessor" in await r.text()
      ws = await s.ws_connect(url + "ws")
      frames, msgs = await sh.collect(ws, 10, lambda f, m: len(f) >= 10)
      assert msgs[0]["paused"] is True and all(f[0] == -2 for f in frames)
      await ws.send_str(json.dumps({"type": "resume"}))
      await ws.send_str(json.dumps({"type": "cfg", "scale": 2.5, "id": 7}))
      frames, msgs = await sh.collect(ws, 60, lambda f, m: sum(
          x[0] >= 1 for x in f) >= 5)
      await ws.close()
      return frames, msgs
  frames, msgs = asyncio.run(go())
  assert sum(f[0] >= 1 for f in frames) >= 5
  ack = [m for m in msgs if m.get("id") == 7][0]
  p.send_signal(signal.SIGINT)
  _, err = p.communicate(timeout=60)
  assert p.returncode == 0, err
  assert "underruns" in err
  doc = json.load(open(log_path))
  ev = [e for e in doc["events"] if e["command"] == "cfg 2.5 0.0"]
  assert ev and ev[0]["ok"] and ev[0]["block"] == ack["block"]
  assert doc["blocks"][ack["block"]]["cfg_scale"] == 2.5


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_even_when_started_with_sigint_ignored(tmp_path,
                                                                  signum):
  """A shell without job control starts `cmd &` with SIGINT ignored, and
  Python keeps that: the server must still stop on SIGINT (and on SIGTERM,
  `kill`'s default) and write its log, as `lmdm generate` does."""
  pkg = make_smoke_package(str(tmp_path / "pkg"))
  log_path = str(tmp_path / "log.json")
  p = lmdm("--checkpoint", pkg, "--port", "0", "--steps-options", "2",
           "--steps", "2", "--prompt", "slow organ", "--log", log_path,
           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
  lines, end = [], time.time() + 240
  while time.time() < end:
    line = p.stderr.readline()
    if not line:
      break
    lines.append(line)
    if "press Play" in line:
      break
  assert any("press Play" in x for x in lines), "".join(lines)
  p.send_signal(signum)
  _, err = p.communicate(timeout=60)
  assert p.returncode == 0, err
  assert "stopping" in err
  assert os.path.exists(log_path)


@pytest.mark.slow
def test_stop_handlers_are_in_place_when_ready_is_printed(tmp_path):
  """In process: when "ready ... press Play" is logged, SIGTERM already
  reaches `lmdm serve`'s own handler (a client that signals on reading the
  line must not race its installation), that handler stops the loop (a
  flag, not an exception a GC callback could swallow), and the process's
  handler is restored after."""
  import argparse
  from lmdm_jax.serve import cli as serve_cli
  pkg = make_smoke_package(str(tmp_path / "pkg"))
  parser = argparse.ArgumentParser()
  serve_cli.add_arguments(parser)
  args = parser.parse_args([
      "--checkpoint", pkg, "--port", "0", "--steps-options", "2",
      "--steps", "2", "--prompt", "slow organ", "--seconds", "20",
      "--log", str(tmp_path / "log.json")])
  seen, lines = {}, []

  def sentinel(signum, frame):
    seen["leaked"] = signum

  def log(msg):
    lines.append(msg)
    if msg.startswith("ready"):
      seen["at_ready"] = signal.getsignal(signal.SIGTERM)
      if seen["at_ready"] is not sentinel:
        signal.raise_signal(signal.SIGTERM)

  old = signal.signal(signal.SIGTERM, sentinel)
  try:
    t0 = time.perf_counter()
    assert serve_cli.run(args, log) == 0
    took = time.perf_counter() - t0
    assert signal.getsignal(signal.SIGTERM) is sentinel
  finally:
    signal.signal(signal.SIGTERM, old)
  assert seen.get("at_ready") not in (None, sentinel), lines
  assert "leaked" not in seen
  assert "stopping" in lines
  assert took < 20, "ran to --seconds instead of stopping on SIGTERM"
  assert os.path.exists(tmp_path / "log.json")
