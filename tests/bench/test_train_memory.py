"""Stage-1 memory benchmark (lmdm_jax/bench/train_memory.py) at tiny size:
the trainer's own step compiles from abstract shapes, the argument is
exactly the TrainState plus the batch, the state is donated, and
gradient accumulation shrinks the temporaries."""
import json
import os

import jax
import numpy as np
import pytest

from lmdm_jax.bench import train_memory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "finetune.py:bc,tiny")


def _bytes(tree):
  return sum(int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize
             for a in jax.tree.leaves(tree))


def test_memory_of_the_trainer_step_from_abstract_shapes(tmp_path):
  out = tmp_path / "mem.json"
  train_memory.main(["--config", TINY, "--batch", "16", "--accum", "1,8",
                     "--inline", "--json", str(out)])
  res = json.loads(out.read_text())
  assert res["benchmark"] == "train_memory" and res["jax"] == jax.__version__
  runs = {r["accum"]: r for r in res["runs"]}
  cfg = train_memory.step_config(TINY, 16)
  _, (state, batch), info = train_memory.build(cfg)
  state_bytes, batch_bytes = _bytes(state), _bytes(batch)
  for accum, r in runs.items():
    assert r["batch"] == 16 and r["microbatch"] == 16 // accum
    assert r["params"] == info["params"] > 0
    assert r["peak_bytes"] == (r["argument_size_in_bytes"]
                               + r["output_size_in_bytes"]
                               + r["temp_size_in_bytes"]
                               - r["alias_size_in_bytes"])
    # Argument: the whole TrainState and the batch; the state is donated
    # (aliased into the output), the batch is not.
    assert r["argument_size_in_bytes"] == state_bytes + batch_bytes
    assert state_bytes - 64 <= r["alias_size_in_bytes"] <= state_bytes
  assert runs[8]["temp_size_in_bytes"] < runs[1]["temp_size_in_bytes"]


def test_bad_arguments_are_refused_before_compiling():
  with pytest.raises(ValueError, match="accum 3 must be >= 1 and divide"):
    train_memory.step_config(TINY, 8, accum=3)
  with pytest.raises(ValueError, match="remat must be one of"):
    train_memory.step_config(TINY, 8, remat="all")
