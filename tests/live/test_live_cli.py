"""`lmdm live`: commands through a terminal (tmux) and a pipe, against the
simulated sound card, with a random-weight package at demo:smoke size.

The control log records, for each command, the index of the first block
generated under it; `session.log[i]` (the log's "blocks") holds the
controls block i was generated with. The tests check one against the other:
a change shows in its block and not in the one before.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import wave

import numpy as np
import pytest

from live_helpers import REPO, make_smoke_package, random_params
from lmdm_jax.live import cli as live
from lmdm_jax.live import commands
from lmdm_jax.configs import dit_config, geometry
from lmdm_jax.codecs import get_codec
from lmdm_jax.live.player import Player
from lmdm_jax.live.session import LiveSession
from lmdm_jax.streaming.state import StreamSpec


@pytest.fixture(scope="module")
def package(smoke_package):
  return smoke_package


@pytest.fixture(scope="module")
def live_env(cli_env):
  """conftest's subprocess environment: one device as a user runs it; a
  persistent compilation cache shared by the runs (the second run compiles
  in ~2 s instead of ~13 s)."""
  return cli_env


def live_argv(package, out_dir, *extra):
  return [sys.executable, "-m", "lmdm_jax.cli", "live", "--checkpoint",
          package, "--prompt", "slow organ chorale", "--simulate",
          "--steps-options", "1,2", "--steps", "2",
          "--out", os.path.join(out_dir, "perf.wav"),
          "--log", os.path.join(out_dir, "controls.json"),
          "--json", os.path.join(out_dir, "latency.json"), *extra]


def applied_at(doc, command):
  """The block a successful command first applied to (checked exists)."""
  hits = [e for e in doc["events"] if e["command"] == command]
  assert len(hits) == 1 and hits[0]["ok"], (command, doc["events"])
  block = hits[0]["block"]
  assert block < len(doc["blocks"]), (command, block, len(doc["blocks"]))
  return block


def assert_changes_at(doc, command, key, value):
  """Block `block` has key == value; the block before does not."""
  b = applied_at(doc, command)
  assert doc["blocks"][b][key] == value, (command, doc["blocks"][b])
  assert b > 0 and doc["blocks"][b - 1][key] != value, (
      command, doc["blocks"][b - 1])
  return b


def check_outputs(out_dir):
  """-> (control log, latency JSON) after checking the WAV they describe."""
  with open(os.path.join(out_dir, "controls.json")) as f:
    doc = json.load(f)
  with open(os.path.join(out_dir, "latency.json")) as f:
    fig = json.load(f)
  with wave.open(os.path.join(out_dir, "perf.wav")) as w:
    assert w.getframerate() == 44100 and w.getnchannels() == 2
    assert w.getnframes() == fig["callbacks"] * 1024 > 0
  assert fig["output"] == "simulated" and fig["underruns"] >= 0
  lat = fig["latency_at_start"]
  assert lat["block_s"] == pytest.approx(24 * 2048 / 44100)
  assert lat["control_to_sound_latency_s"] > lat["buffer_s"] > 0
  assert set(lat["model_s_per_steps"]) == {"1", "2"}
  assert fig["blocks"] == len(doc["blocks"])
  assert [b["block"] for b in doc["blocks"]] == list(range(fig["blocks"]))
  return doc, fig


# -- (b), (c): commands through a pipe ----------------------------------------
SCRIPT = """\
status
p ragtime piano
wait 1
steps 8
bogus command
cfg -1
mix organ=x
cfg 3
wait 1
steps 1
wait 1
x fast piano 2
wait 2
status
q
"""


@pytest.fixture(scope="module")
def piped(package, live_env, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("piped"))
  t0 = time.perf_counter()
  r = subprocess.run(live_argv(package, out), input=SCRIPT, text=True,
                     capture_output=True, timeout=600, cwd=REPO, env=live_env)
  assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
  return r, out, time.perf_counter() - t0


@pytest.mark.slow
def test_piped_commands_apply_at_their_blocks(piped):
  r, out, _ = piped
  doc, fig = check_outputs(out)
  assert doc["steps_options"] == [1, 2] and doc["cfg_branch"] is True
  b_prompt = assert_changes_at(doc, "p ragtime piano", "prompts",
                               {"ragtime piano": 1.0})
  b_cfg = assert_changes_at(doc, "cfg 3", "cfg_scale", 3.0)
  b_steps = assert_changes_at(doc, "steps 1", "steps", 1)
  assert b_prompt < b_cfg < b_steps            # `wait 1` between them
  b_fade = applied_at(doc, "x fast piano 2")
  fade = [doc["blocks"][b_fade + i]["prompts"]["fast piano"]
          for i in range(2)]
  assert fade == [0.5, 1.0]
  assert doc["blocks"][b_fade - 1]["prompts"] == {"ragtime piano": 1.0}
  # Latency accounting printed at start, replies on stdout.
  assert "control-to-sound latency" in r.stderr
  assert "compute per block at steps 1 (warm-up block)" in r.stderr
  assert f"cfg 3 from block {b_cfg}" in r.stdout
  assert "played" in r.stdout and "underruns" in r.stdout


@pytest.mark.slow
def test_bad_commands_print_why_and_playback_goes_on(piped):
  r, out, _ = piped
  doc, fig = check_outputs(out)
  bad = {e["command"]: e["message"] for e in doc["events"] if not e["ok"]}
  assert set(bad) == {"steps 8", "bogus command", "cfg -1", "mix organ=x"}
  assert "not compiled at start; choose from [1, 2]" in bad["steps 8"]
  assert "unknown command 'bogus'" in bad["bogus command"]
  assert "cfg scale must be in [0, 25]" in bad["cfg -1"]
  assert "must be a number" in bad["mix organ=x"]
  for message in bad.values():
    assert f"error: {message}" in r.stdout
  # The commands after them were applied and blocks kept coming.
  assert applied_at(doc, "steps 1") < fig["blocks"] - 1
  assert all(b["steps"] in (1, 2) for b in doc["blocks"])


@pytest.mark.slow
def test_piped_session_fills_the_shared_compilation_cache(piped, live_env):
  """The module's later `lmdm live` runs reuse these compiles (what keeps
  the file fast; its seconds are printed, never asserted: machine load)."""
  cache = live_env["JAX_COMPILATION_CACHE_DIR"]
  assert os.path.isdir(cache) and os.listdir(cache), cache
  print(f"piped session: {piped[2]:.1f} s (compile + ~5 s of music)")


# -- (a): a terminal, through tmux --------------------------------------------
def _tmux():
  tmux = shutil.which("tmux")
  if tmux is None and shutil.which("apt-get") and os.geteuid() == 0:
    subprocess.run(["apt-get", "install", "-y", "-qq", "tmux"],
                   capture_output=True, timeout=300)
    tmux = shutil.which("tmux")
  if tmux is None:
    pytest.skip("tmux is not installed and `apt-get install tmux` failed "
                "(not root, no apt-get or no network); run "
                "`bash .ci/install_debian.sh`")
  return tmux


@pytest.mark.slow
def test_terminal_session_through_tmux(package, live_env, tmp_path):
  tmux = _tmux()
  sock = f"lmdm-live-test-{os.getpid()}"
  out = str(tmp_path)
  env_prefix = " ".join(f"{k}={shlex.quote(live_env[k])}" for k in (
      "PYTHONPATH", "JAX_PLATFORMS", "XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR",
      "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
      "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"))
  shell = (f"cd {shlex.quote(REPO)} && env {env_prefix} "
           f"{shlex.join(live_argv(package, out))}; "
           f"echo LIVE-EXIT=$?; sleep 120")

  def tm(*args):
    return subprocess.run([tmux, "-L", sock, *args], capture_output=True,
                          text=True, timeout=30, env=live_env)

  def screen():
    return tm("capture-pane", "-p", "-J", "-S", "-2000", "-t", "live").stdout

  def wait_for(text, count=1, timeout=90.0):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
      if screen().count(text) >= count:
        return
      time.sleep(0.1)
    raise AssertionError(f"{text!r} did not appear:\n{screen()[-3000:]}")

  def send(line):
    tm("send-keys", "-t", "live", "-l", line)
    tm("send-keys", "-t", "live", "Enter")

  r = tm("new-session", "-d", "-s", "live", "-x", "220", "-y", "50", shell)
  assert r.returncode == 0, r.stderr
  try:
    wait_for("playing (simulated output, until q)")
    send("p ragtime piano")
    wait_for("prompt 'ragtime piano' from block")
    send("wait 1")
    wait_for("generated", 1)
    send("cfg 2.5")
    wait_for("cfg 2.5 from block")
    send("wait 1")
    wait_for("generated", 2)
    send("steps 1")
    wait_for("steps 1 from block")
    send("steps 16")
    wait_for("steps 16 was not compiled at start")
    send("wait 1")
    wait_for("generated", 3)
    send("q")
    wait_for("LIVE-EXIT=", timeout=60)
    assert "LIVE-EXIT=0" in screen(), screen()[-3000:]
  finally:
    tm("kill-server")
  doc, fig = check_outputs(out)
  b1 = assert_changes_at(doc, "p ragtime piano", "prompts",
                         {"ragtime piano": 1.0})
  b2 = assert_changes_at(doc, "cfg 2.5", "cfg_scale", 2.5)
  b3 = assert_changes_at(doc, "steps 1", "steps", 1)
  assert b1 < b2 < b3
  assert [e["ok"] for e in doc["events"] if e["command"] == "steps 16"] == [
      False]


# -- (d): a control takes effect in the next block, not before -----------------
@pytest.fixture(scope="module")
def tiny_parts(tiny_bc_live):
  """conftest's tiny BC stream with CFG; numpy-random parameters
  (helpers.tiny_setup's eager jax randomisation costs ~7 s here)."""
  return tiny_bc_live


def _session(parts):
  spec, params = parts
  enc = {}

  def encode(text):
    if text not in enc:
      enc[text] = np.random.default_rng(len(enc) + 1).standard_normal(
          (spec.cond_tokens, spec.model.cond_token_dim)).astype(np.float32)
    return enc[text]
  s = LiveSession(params, spec, encode, steps_options=(1, 2), drop_frames=4)
  s.set_prompts({"a": 1.0})
  return s


@pytest.mark.parametrize("command", [
    "p b", "mix a=0.5; b=0.5", "x b 2", "cfg 3", "steps 1", "seed 9",
    "drop 8"])
def test_a_command_changes_the_next_block_and_not_before(tiny_parts,
                                                         command):
  ref, s = _session(tiny_parts), _session(tiny_parts)
  codec = get_codec("pool", latent_channels=8)
  app = commands.LiveApp(s, Player(s, codec))
  want = [ref.next_block() for _ in range(4)]
  got = [s.next_block() for _ in range(2)]
  app.handle(command)
  assert app.events[-1]["ok"] and app.events[-1]["block"] == 2
  got += [s.next_block() for _ in range(2)]
  for i in range(2):
    np.testing.assert_array_equal(got[i], want[i])
  assert np.abs(got[2] - want[2]).max() > 1e-3, command


def test_steps_then_drop_compiles_nothing_and_keeps_the_noise_count(
    tiny_parts):
  s = _session(tiny_parts)
  # Sessions of equal spec share streams (`stream_for`): compare the cache
  # sizes after start-up with those after playing, not with constants.
  def sizes():
    return {k: (st._init_state._cache_size(), st._block._cache_size())
            for k, st in s.streams.items()}
  compiled = sizes()
  assert sorted(n for n, _ in compiled.values())[0] == 0, compiled  # 1 primer
  for _ in range(3):
    s.next_block()
  s.set_steps(1)
  s.drop_context(8)
  assert int(s.state.block) == 3        # not replaying block 0's noise
  assert sizes() == compiled
  np.testing.assert_array_equal(np.asarray(s.state.context)[:, :8], 0.0)


# -- parsing and argument checks (no model) ------------------------------------
@pytest.mark.parametrize("line, name, args", [
    ("p slow organ", "p", ({"slow organ": 1.0},)),
    ("prompt  a b ", "p", ({"a b": 1.0},)),
    ("mix a = 0.7; b c=0.3;", "mix", ({"a": 0.7, "b c": 0.3},)),
    ("x fast piano", "x", ({"fast piano": 1.0}, 4)),
    ("x fast piano 8", "x", ({"fast piano": 1.0}, 8)),
    ("x jazz 1920s", "x", ({"jazz 1920s": 1.0}, 4)),
    ("x a=1; b=3 2", "x", ({"a": 1.0, "b": 3.0}, 2)),
    ("cfg 2.5", "cfg", (2.5, 0.0)),
    ("cfg 7 0.7", "cfg", (7.0, 0.7)),
    ("steps 4", "steps", (4,)),
    ("seed -3", "seed", (-3,)),
    ("drop", "drop", (None,)),
    ("drop 90", "drop", (90,)),
    ("wait", "wait", (1,)),
    ("Q", "q", ()),
    ("?", "help", ()),
])
def test_parse_command(line, name, args):
  cmd = commands.parse_command(line)
  assert (cmd.name, cmd.args) == (name, args)


@pytest.mark.parametrize("line, match", [
    ("play x", "unknown command 'play'"),
    ("p", "p needs a prompt"),
    ("mix a", "TEXT=WEIGHT"),
    ("mix a=-1", r"in \[0, 1e\+06\]"),
    ("mix a=0; b=0", "not all be zero"),
    ("mix a=1; a=2", "appears twice"),
    ("mix a=nan", "finite"),
    ("x a 0", r"blocks must be in \[1, 1000\]"),
    ("cfg", "cfg X"),
    ("cfg 3 2", r"rescale must be in \[0, 1\]"),
    ("steps two", "steps must be an integer"),
    ("seed 99999999999", "int32"),
    ("wait 0", ">= 1"),
    ("status now", "takes no arguments"),
])
def test_parse_command_errors(line, match):
  with pytest.raises(ValueError, match=match):
    commands.parse_command(line)
  assert commands.parse_command("  # a comment") is None
  assert commands.parse_command("") is None


@pytest.mark.parametrize("argv, match", [
    (["--no-tui"], "needs --seconds"),
    (["--seconds", "0"], "seconds"),
    (["--out", "x.mp3"], ".wav"),
    (["--log", "/no/such/dir/c.json"], "does not exist"),
    (["--cfg", "-2"], "--cfg"),
    (["--buffer-blocks", "0"], "--buffer-blocks"),
    (["--steps-options", "2,x"], "--steps-options"),
    (["--plus-plus", "--cfg", "3"], "weight --cfg in"),
    (["--plus-plus", "--no-cfg-branch"], "needs the cfg branch"),
])
def test_live_rejects_bad_arguments(argv, match):
  from lmdm_jax.cli import build_parser
  args = build_parser().parse_args(["live", "--prompt", "a", *argv])
  with pytest.raises(ValueError, match=match):
    live.check_args(args)


@pytest.mark.slow
def test_player_background_playback_and_repeated_renders(tiny_parts):
  """start_simulated/stop around the threads the blocking API used; a
  second render() continues the stream (it crashed on the flushed tail)."""
  s = _session(tiny_parts)
  player = Player(s, get_codec("pool", latent_channels=8), overlap=1)
  clip = player.render(2)
  assert player.render(3).shape == (2, 3 * 4 * 2048) == (
      clip.shape[0], clip.shape[1] * 3 // 2)
  player.start_simulated(record=True)       # open-ended: until stop()
  time.sleep(0.5)
  assert not player.wait(0)
  with player.lock:
    s.set_cfg(2.0)
  report = player.stop()
  assert report["callbacks"] > 0 and player.error is None
  assert player.played().shape == (2, report["callbacks"] * 1024)
  assert len(s.log) > 5


@pytest.mark.slow
def test_sounddevice_path_with_a_fake_portaudio(tiny_parts, monkeypatch):
  """start_sounddevice/stop drive a PortAudio-shaped OutputStream (here a
  thread calling the callback), without a sound card on the test machine."""
  import threading
  import types

  class FakeStream:
    def __init__(self, samplerate, channels, blocksize, dtype, callback):
      self.args = (samplerate, channels, blocksize, dtype)
      self.callback, self.running = callback, False

    def _run(self):
      while self.running:
        out = np.zeros((self.args[2], self.args[1]), np.float32)
        self.callback(out, self.args[2], None, None)
        time.sleep(self.args[2] / self.args[0])

    def start(self):
      self.running = True
      self.thread = threading.Thread(target=self._run, daemon=True)
      self.thread.start()

    def stop(self):
      self.running = False
      self.thread.join()

    def close(self):
      pass

  fake = types.ModuleType("sounddevice")
  fake.OutputStream, fake.PortAudioError = FakeStream, OSError
  monkeypatch.setitem(sys.modules, "sounddevice", fake)
  s = _session(tiny_parts)
  player = Player(s, get_codec("pool", latent_channels=8))
  player.start_sounddevice(record=True)
  time.sleep(0.4)
  report = player.stop()
  assert report["callbacks"] > 3
  assert player.played().shape == (2, report["callbacks"] * 1024)
