"""Exact resume: a run stopped by SIGTERM or SIGKILL and resumed ends with
bit-identical parameters, optimizer state and per-step losses."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lmdm_jax.train import loop
from train_helpers import ROOT, tiny_finetune

STEPS, EVERY = 6, 2


def _cfg():
  cfg = tiny_finetune("bc")
  cfg.mesh.devices = 1
  cfg.train.steps = STEPS
  cfg.ckpt.every_steps = EVERY
  return cfg


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: r["loss"] for r in rows}


def _assert_same(a, b):
  la, lb = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(
      jax.device_get(b))
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("ref"))
  state = loop.train(_cfg(), workdir, log=lambda *a: None, progress=False)
  return workdir, state


def test_sigterm_saves_and_resumes_exactly(reference, tmp_path):
  ref_dir, ref_state = reference
  workdir = str(tmp_path)

  def term(step):
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)

  first = loop.train(_cfg(), workdir, log=lambda *a: None, progress=False,
                     after_step=term)
  assert int(first.step) == 3
  assert sorted(os.listdir(os.path.join(workdir, "ckpt")))[-1] == "3"
  logs = []
  state = loop.train(_cfg(), workdir, log=logs.append, progress=False)
  assert any("resumed from step 3" in m for m in logs)
  _assert_same(state.params, ref_state.params)
  _assert_same(state.opt_state, ref_state.opt_state)
  assert _losses(workdir) == _losses(ref_dir)


@pytest.mark.slow
def test_sigkill_between_checkpoints_resumes_exactly(reference, tmp_path):
  ref_dir, ref_state = reference
  workdir = str(tmp_path)
  cmd = [sys.executable, "-m", "lmdm_jax.cli", "train", "--config",
         os.path.join(ROOT, "configs", "finetune_bc.py:tiny"),
         "--workdir", workdir, "--no-progress", "--hang-after-step", "3",
         "--config.model.depth=1", "--config.mesh.devices=1",
         f"--config.train.steps={STEPS}",
         f"--config.ckpt.every_steps={EVERY}"]
  proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 600
    for line in proc.stderr:
      if "HANG after step 3" in line or time.time() > deadline:
        break
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)     # step 3 done, step 4 not saved
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL
  assert sorted(os.listdir(os.path.join(workdir, "ckpt"))) == ["2"]
  logs = []
  state = loop.train(_cfg(), workdir, log=logs.append, progress=False)
  assert any("resumed from step 2" in m for m in logs)
  _assert_same(state.params, ref_state.params)
  _assert_same(state.opt_state, ref_state.opt_state)
  # Steps 1-3 logged before the kill, 3-6 after the resume (3 twice).
  assert _losses(workdir) == _losses(ref_dir)
