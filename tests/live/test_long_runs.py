"""Memory does not grow with performance length (issue 20, finding 7).

A 10-minute `lmdm live` stream against the simulated clock running as fast
as compute (--no-pace), and a 10-minute `lmdm generate`, each in a
subprocess whose resident memory (VmRSS) is sampled from /proc. The model
is a random-weight package of the demo's geometry (configs/demo.py:smoke:
1.11 s blocks of 24 latent frames x 64 channels) with the `pool` codec, so
ten minutes (540 blocks) take seconds on a CPU.

Stated bound: after start-up, RSS grows by at most GROWTH_MB over the ten
minutes of audio. Keeping the audio would cost 212 MB (600 s of 44.1 kHz
stereo float32; `generate` held ~2x that in float64 crossfades); what
still grows is per-block bookkeeping (the control log, compute times:
well under 1 KB a block, ~50 MB for a day of 1.11 s blocks).
"""
import json
import os
import subprocess
import sys
import threading
import time
import wave

import pytest

from live_helpers import REPO, make_smoke_package

pytestmark = pytest.mark.slow       # ten-minute simulated streams in subprocesses

GROWTH_MB = 40.0
SECONDS = 600


def pool_package(out):
  """make_smoke_package with the `pool` codec (decode costs ~nothing)."""
  path = make_smoke_package(out)
  with open(os.path.join(path, "model.json")) as f:
    doc = json.load(f)
  doc["codec"] = {"name": "pool", "kwargs": {"latent_channels":
                                             doc["dit"]["io_channels"]}}
  with open(os.path.join(path, "model.json"), "w") as f:
    json.dump(doc, f)
  return path


@pytest.fixture(scope="module")
def package(tmp_path_factory):
  return pool_package(str(tmp_path_factory.mktemp("pool_pkg")))


def rss_profile(argv, env, start_marker):
  """Runs argv; -> (rc, stderr, [RSS MB sampled after `start_marker`
  appeared on stderr]). Samples every 20 ms from /proc/PID/status."""
  p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
  lines, started = [], threading.Event()

  def read():
    for line in p.stderr:
      lines.append(line)
      if start_marker in line:
        started.set()
  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  samples = []
  while p.poll() is None:
    if started.is_set():
      try:
        with open(f"/proc/{p.pid}/status") as f:
          for line in f:
            if line.startswith("VmRSS:"):
              samples.append(int(line.split()[1]) / 1024)
      except (FileNotFoundError, ProcessLookupError):
        break
    time.sleep(0.02)
  p.wait(timeout=600)
  reader.join(timeout=10)
  p.stdout.read()
  return p.returncode, "".join(lines), samples


def check_bounded(samples, what):
  assert len(samples) >= 10, (what, samples)
  base = samples[len(samples) // 10]            # after the first tenth
  growth = max(samples) - base
  print(f"{what}: RSS {base:.0f} MB -> max {max(samples):.0f} MB "
        f"({len(samples)} samples), growth {growth:.1f} MB")
  assert growth < GROWTH_MB, (what, base, max(samples))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="samples RSS from Linux /proc")
def test_ten_minute_live_stream_has_bounded_memory(package, cli_env, tmp_path):
  out = str(tmp_path / "perf.wav")
  rc, err, samples = rss_profile(
      [sys.executable, "-m", "lmdm_jax.cli", "live", "--checkpoint",
       package, "--prompt", "slow organ chorale", "--simulate", "--no-pace",
       "--seconds", str(SECONDS), "--no-tui", "--steps-options", "2",
       "--out", out, "--json", str(tmp_path / "live.json")],
      cli_env, "[live] playing")
  assert rc == 0, err[-3000:]
  with open(tmp_path / "live.json") as f:
    fig = json.load(f)
  assert abs(fig["seconds_played"] - SECONDS) < 0.1, fig
  assert fig["blocks"] >= SECONDS / fig["block_s"] - 1, fig
  with wave.open(out) as w:                       # streamed to disk
    assert w.getnframes() == fig["callbacks"] * 1024
  check_bounded(samples, "live")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="samples RSS from Linux /proc")
def test_ten_minute_generate_has_bounded_memory(package, cli_env, tmp_path):
  out = str(tmp_path / "long.wav")
  rc, err, samples = rss_profile(
      [sys.executable, "-m", "lmdm_jax.cli", "generate", "--checkpoint",
       package, "--prompt", "slow organ chorale", "--seconds", str(SECONDS),
       "--out", out, "--no-progress", "--save-latents",
       str(tmp_path / "long.npy")], cli_env, "compiled in")
  assert rc == 0, err[-3000:]
  with wave.open(out) as w:
    assert w.getnframes() == SECONDS * 44100
  import numpy as np
  assert np.load(tmp_path / "long.npy").shape[1] == 64
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".lmdm_")]
  check_bounded(samples, "generate")
