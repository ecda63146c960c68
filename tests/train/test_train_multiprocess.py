"""Two processes (2 simulated CPU devices each, gloo collectives over
127.0.0.1) train 3 steps: both end with bit-identical params, equal to one
process training on 4 devices."""
import os
import re
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from lmdm_jax.train import checkpoint, loop, parallel
from lmdm_jax.train import state as train_state
from train_helpers import ROOT, tiny_finetune
from xla_flags import subprocess_env

pytestmark = pytest.mark.slow          # three processes, gloo collectives

STEPS = 3


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _cfg():
  cfg = tiny_finetune("bc")
  cfg.train.steps = STEPS
  cfg.optim.eps = 1e-6     # see test_train_core: noise-level grads stay so
  return cfg


def test_two_processes_equal_one_process(tmp_path):
  workdir = str(tmp_path / "mp")
  port = _free_port()
  env = subprocess_env(devices=2, JAX_PLATFORMS="cpu")
  procs = []
  for pid in range(2):
    cmd = [sys.executable, "-m", "lmdm_jax.cli", "train", "--config",
           os.path.join(ROOT, "configs", "finetune.py:bc,tiny"),
           "--workdir", workdir, "--no-progress",
           "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
           "--process-id", str(pid), "--config.model.depth=1",
           f"--config.train.steps={STEPS}", "--config.optim.eps=1e-6"]
    procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT))
  # A hang guard, not a speed check: the whole test took 500 s on 2 cores
  # at a load average of 18 (it compiles in 3 processes).
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=900)[0])
    finally:
      if p.poll() is None:
        p.kill()
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert all("2 process(es), 4 devices" in o for o in outs)
  digests = [re.search(r"params sha1 ([0-9a-f]+)", o).group(1) for o in outs]
  assert digests[0] == digests[1]

  # The same run in this process on 4 of its devices.
  cfg = _cfg()
  cfg.mesh.devices = 4
  ref = loop.train(cfg, str(tmp_path / "sp"), log=lambda *a: None,
                   progress=False)
  mesh = parallel.make_mesh(jax.devices()[:4])
  tx = train_state.make_optimizer(cfg.optim)
  abstract = checkpoint.abstract_like(
      jax.eval_shape(lambda: train_state.init_state(cfg, tx)),
      parallel.replicated(mesh))
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"), 1, 1)
  assert ckpt.latest_step() == STEPS
  mp_state, data = ckpt.restore(STEPS, abstract)
  ckpt.close()
  assert data["next_batch"] == STEPS
  diff = jax.tree.map(lambda a, b: np.max(np.abs(np.asarray(a) -
                                                 np.asarray(b))),
                      mp_state.params, ref.params)
  worst = max(jax.tree.leaves(diff))
  print(f"multi-process vs single-process max |param diff| = {worst:.3g}")
  assert worst <= 1e-5
