"""Exact resume and faults: a run stopped by SIGTERM or SIGKILL and resumed
ends with bit-identical parameters, optimizer state and per-step losses;
divergence, a truncated checkpoint or a config that does not restore stop
or fall back without losing the last good checkpoint."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lmdm_jax.train import checkpoint, loop
from train_helpers import ROOT, tiny_finetune
from xla_flags import KEEP_EVERY_COMPILE

STEPS, EVERY = 6, 2


def _cached_env():
  """The training subprocesses' environment: the test process's (its XLA
  flags, so the compiled programs are the in-process reference's), every
  program kept in the run's persistent compilation cache, so a resumed
  process reads its train step back instead of compiling it again."""
  return dict(os.environ, **KEEP_EVERY_COMPILE)


def _cfg(steps=STEPS):
  cfg = tiny_finetune("bc")
  cfg.mesh.devices = 1
  cfg.train.steps = steps
  cfg.ckpt.every_steps = EVERY
  return cfg


def _rows(workdir):
  """metrics.jsonl rows, parsed strictly (a bare NaN/Infinity fails)."""
  def no_constant(name):
    raise ValueError(f"non-strict JSON constant {name}")
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line, parse_constant=no_constant) for line in f]


def _losses(workdir):
  rows = _rows(workdir)
  steps = [r["step"] for r in rows]
  assert steps == sorted(set(steps)), f"steps logged twice: {steps}"
  return {r["step"]: r["loss"] for r in rows}


def _assert_same(a, b):
  la, lb = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(
      jax.device_get(b))
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _steps(workdir):
  return sorted(int(s) for s in os.listdir(os.path.join(workdir, "ckpt"))
                if s.isdigit())


def _quiet(*a):
  pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("ref"))
  state = loop.train(_cfg(), workdir, log=_quiet, progress=False)
  return workdir, state


def test_sigterm_saves_and_resumes_exactly(reference, tmp_path):
  ref_dir, ref_state = reference
  workdir = str(tmp_path)

  def term(step):
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(loop.Preempted, match="preempted at step 3") as e:
    loop.train(_cfg(), workdir, log=_quiet, progress=False, after_step=term)
  assert int(e.value.state.step) == 3 and e.value.step == 3
  assert _steps(workdir)[-1] == 3
  logs = []
  state = loop.train(_cfg(), workdir, log=logs.append, progress=False)
  assert any("resumed from step 3" in m for m in logs)
  _assert_same(state.params, ref_state.params)
  _assert_same(state.opt_state, ref_state.opt_state)
  assert _losses(workdir) == _losses(ref_dir)


def test_cli_sigterm_exits_143_and_says_preempted(tmp_path, monkeypatch,
                                                  capsys):
  """`lmdm train` after a SIGTERM save: exit 143, "preempted at step N",
  never "finished" (a scheduler can tell the two apart)."""
  from lmdm_jax import cli
  orig = loop.train

  def train(*a, **kw):
    kw["after_step"] = lambda s: s == 2 and os.kill(os.getpid(),
                                                    signal.SIGTERM)
    return orig(*a, **kw)

  monkeypatch.setattr(loop, "train", train)
  rc = cli.main(["train", "--config",
                 os.path.join(ROOT, "configs/finetune.py:bc,tiny"),
                 "--workdir", str(tmp_path), "--no-progress",
                 "--config.model.depth=1", "--config.mesh.devices=1"])
  err = capsys.readouterr().err
  assert rc == loop.EXIT_PREEMPTED == 143
  assert "preempted at step 2" in err and "finished" not in err
  assert _steps(str(tmp_path)) == [2]


@pytest.mark.slow
def test_sigkill_between_checkpoints_resumes_exactly(reference, tmp_path):
  ref_dir, ref_state = reference
  workdir = str(tmp_path)
  cmd = [sys.executable, "-m", "lmdm_jax.cli", "train", "--config",
         os.path.join(ROOT, "configs", "finetune.py:bc,tiny"),
         "--workdir", workdir, "--no-progress", "--hang-after-step", "3",
         "--config.model.depth=1", "--config.mesh.devices=1",
         f"--config.train.steps={STEPS}",
         f"--config.ckpt.every_steps={EVERY}"]
  proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                          env=_cached_env())
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
  assert _steps(workdir) == [2]
  logs = []
  state = loop.train(_cfg(), workdir, log=logs.append, progress=False)
  assert any("resumed from step 2" in m for m in logs)
  _assert_same(state.params, ref_state.params)
  _assert_same(state.opt_state, ref_state.opt_state)
  # Steps 1-3 logged before the kill, 3-6 after the resume: step 3 is
  # logged once (the resume drops rows after its checkpoint).
  assert [r["step"] for r in _rows(workdir)] == list(range(1, STEPS + 1))
  assert _losses(workdir) == _losses(ref_dir)


def test_lr_nan_is_refused_before_anything_is_written(tmp_path):
  for field, value in (("lr", float("nan")), ("lr", float("inf")),
                       ("clip_norm", float("nan")), ("b2", 1.0)):
    cfg = _cfg()
    cfg.optim[field] = value
    with pytest.raises(ValueError, match=f"optim.{field} must be finite"):
      loop.train(cfg, str(tmp_path), log=_quiet, progress=False)
  assert not os.path.exists(os.path.join(str(tmp_path), "ckpt"))


def _nan_at(monkeypatch, batch_index):
  """Batches of global index `batch_index` (step batch_index + 1) hold a
  NaN latent, as a corrupt record would."""
  orig = loop.make_pipeline

  def make(*a, **kw):
    p = orig(*a, **kw)
    batch = p.batch

    def poisoned(b):
      out = batch(b)
      if b == batch_index:
        out["latents"][0, 0, 0] = np.nan
      return out
    p.batch = poisoned
    return p

  monkeypatch.setattr(loop, "make_pipeline", make)


@pytest.mark.parametrize("log_every", [1, 100])
def test_non_finite_loss_stops_before_saving(tmp_path, monkeypatch,
                                             log_every):
  """A NaN at step 5 stops the run naming step 5, found at that log step
  (log_every 1) or at the next save (step 6, log_every 100): no checkpoint
  after the last good one (4), none rotated away (keep=2), strict JSON."""
  workdir = str(tmp_path)
  cfg = _cfg()
  cfg.ckpt.keep = 2
  cfg.train.log_every = log_every
  loop.train(cfg, workdir, log=_quiet, progress=False, stop_after=4)
  assert _steps(workdir) == [2, 4]
  _nan_at(monkeypatch, 4)
  with pytest.raises(loop.NonFinite, match="at step 5") as e:
    loop.train(cfg, workdir, log=_quiet, progress=False)
  assert e.value.last_good == 4 and "step 4" in str(e.value)
  assert _steps(workdir) == [2, 4]
  rows = _rows(workdir)          # strict: NaN is written as null
  if log_every == 1:
    assert rows[-1]["step"] == 5 and rows[-1]["loss"] is None
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"), 2, 2)
  ckpt.verify(4)
  ckpt.close()


def test_failed_restore_leaves_config_json_unchanged(tmp_path):
  workdir = str(tmp_path)
  loop.train(_cfg(), workdir, log=_quiet, progress=False, stop_after=2)
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    before = f.read()
  other = _cfg()
  other.model.depth = 2            # another model: the checkpoint misfits
  with pytest.raises(checkpoint.RestoreError, match="step 2"):
    loop.train(other, workdir, log=_quiet, progress=False)
  with open(path) as f:
    assert f.read() == before
  assert _steps(workdir) == [2]   # nothing moved aside for a config error


def test_truncated_latest_checkpoint_falls_back(reference, tmp_path):
  """The newest step's biggest file truncated: named with its step, moved
  aside, the run resumes from the step before and still ends bit-exact."""
  ref_dir, ref_state = reference
  workdir = str(tmp_path)
  loop.train(_cfg(), workdir, log=_quiet, progress=False, stop_after=4)
  step4 = os.path.join(workdir, "ckpt", "4")
  files = [os.path.join(r, f) for r, _, fs in os.walk(step4) for f in fs]
  big = max(files, key=os.path.getsize)
  with open(big, "r+b") as f:
    f.truncate(os.path.getsize(big) // 2)
  logs = []
  state = loop.train(_cfg(), workdir, log=logs.append, progress=False)
  warn = [m for m in logs if "WARNING" in m]
  assert warn and "step 4" in warn[0] and big in warn[0], logs
  assert any("resumed from step 2" in m for m in logs)
  assert os.listdir(os.path.join(workdir, "ckpt.corrupt"))[0].startswith(
      "4-")
  _assert_same(state.params, ref_state.params)
  assert _losses(workdir) == _losses(ref_dir)


@pytest.mark.slow
def test_sigkill_at_random_points_resumes_bit_exactly(tmp_path):
  """Five SIGKILLs at random moments of one run (inside steps, saves,
  metric writes, ...), each followed by a resume in a new process; the
  final parameters equal an uninterrupted run's, and no kill lost more
  than ckpt.every_steps completed steps (synchronous saves)."""
  steps, every = 24, 3
  seed = int(os.environ.get("LMDM_KILL_SEED", time.time_ns() % 10_000))
  rng = random.Random(seed)
  ref = loop.train(_cfg(steps), str(tmp_path / "ref"), log=_quiet,
                   progress=False)
  workdir = str(tmp_path / "run")
  metrics = os.path.join(workdir, "metrics.jsonl")
  cmd = [sys.executable, "-m", "lmdm_jax.cli", "train", "--config",
         os.path.join(ROOT, "configs", "finetune.py:bc,tiny"),
         "--workdir", workdir, "--no-progress", "--config.model.depth=1",
         "--config.mesh.devices=1", f"--config.train.steps={steps}",
         f"--config.ckpt.every_steps={every}"]
  targets = sorted(rng.sample(range(2, steps - 1), 5))
  saved, kills = 0, []
  for target in targets:
    target = max(target, saved + 1)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_cached_env())
    try:
      deadline = time.time() + 300
      last = 0
      while last < target and time.time() < deadline and (
          proc.poll() is None):
        time.sleep(0.005)
        try:
          with open(metrics) as f:
            rows = [json.loads(x) for x in f.read().splitlines() if x]
          last = rows[-1]["step"] if rows else 0
        except (OSError, ValueError, IndexError, KeyError):
          pass
      time.sleep(rng.uniform(0.0, 0.3))   # anywhere in the next steps
      assert proc.poll() is None, (f"seed {seed}: the run ended before the "
                                   f"kill at step {target}")
      proc.send_signal(signal.SIGKILL)
      proc.wait(timeout=30)
    finally:
      if proc.poll() is None:
        proc.kill()
    with open(metrics) as f:
      logged = max(json.loads(x)["step"] for x in f.read().splitlines()
                   if x.strip().endswith("}"))
    mid_save = any("tmp" in d for d in os.listdir(os.path.join(workdir,
                                                              "ckpt")))
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"), every, 3)
    saved = ckpt.latest_step() or 0
    ckpt.close()
    kills.append(dict(logged=logged, saved=saved, mid_save=mid_save))
    assert logged - saved <= every, (seed, target, logged, saved)
    loop.trim_metrics(metrics, saved)    # as the resume will: no stale rows
  print(f"seed {seed}: kills {kills}")      # pytest -s shows where
  state = loop.train(_cfg(steps), workdir, log=_quiet, progress=False)
  _assert_same(state.params, ref.params)
  _assert_same(state.opt_state, ref.opt_state)
  assert [r["step"] for r in _rows(workdir)] == list(range(1, steps + 1))
