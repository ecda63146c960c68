"""A simulated real-time run of the shipped demo model (issue: live): it
plays to the end and reports its underruns and latency, consistently with
the recording. Zero underruns is not asserted: that depends on the machine's
load (docs/live.md has the idle and loaded figures for the 60 s run); the
accounting must be right either way.

10 s, not the documented 60 s: the run is wall-clock paced, and 10 s (9
blocks of 1.11 s behind a 2-block buffer) already passes start-up, the
buffer's fill and the steady state that the accounting covers; the 60 s
figures are docs/live.md's command, not a test."""
import json
import os
import re
import subprocess
import sys

import pytest
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

pytestmark = pytest.mark.slow          # a real-time run in a subprocess

SECONDS = 10.0


def test_demo_model_simulated_real_time_run(tmp_path, cli_env):
  out = str(tmp_path / "live.wav")
  doc_path = str(tmp_path / "live.json")
  env = cli_env                               # one device, as a user runs it
  r = subprocess.run(
      [sys.executable, "-m", "lmdm_jax.cli", "live", "--prompt",
       "slow Bach chorale for string ensemble", "--simulate", "--seconds",
       str(SECONDS), "--steps-options", "8", "--json", doc_path, "--out", out],
      stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
      cwd=str(tmp_path), env=env)
  assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
  doc = json.load(open(doc_path))
  assert doc["model"].endswith(os.path.join("assets", "demo"))
  period, block = doc["report"]["period_s"], doc["block_s"]
  assert abs(doc["seconds_played"] - SECONDS) <= period
  assert abs(doc["callbacks"] * period - doc["seconds_played"]) < 1e-6
  u = doc["underruns"]
  assert isinstance(u, int) and 0 <= u <= doc["callbacks"]
  # Every period was either fed by a generated block or counted as late.
  assert doc["blocks"] * block + u * period >= doc["seconds_played"] - block
  start = doc["latency_at_start"]
  assert start["control_to_sound_latency_s"] > block
  assert start["real_time_factor"] > 0 and start["steps"] == 8
  assert doc["compute_per_block_s"]["median"] > 0
  # The stdout summary and the recording agree with the JSON.
  m = re.search(r"played ([\d.]+) s: (\d+) blocks, (\d+) underruns",
                r.stdout)
  assert m and int(m.group(2)) == doc["blocks"] and int(m.group(3)) == u
  info = sf.info(out)
  assert abs(info.duration - doc["seconds_played"]) <= period
  assert "control-to-sound latency" in r.stderr
