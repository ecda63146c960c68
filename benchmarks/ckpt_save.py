"""What synchronous checkpoint saves cost (lmdm_jax/train/checkpoint.py).

The trainer saves synchronously by default (a SIGKILL then loses at most
ckpt.every_steps steps); `ckpt.async_save=True` overlaps the write with
the next steps (a SIGKILL can lose up to 2 * every_steps - 1). For a
config's TrainState (params, AdamW moments, step, rng; synthetic init, no
training) this times, `--repeats` times each:

  sync_save_s     Checkpointer.save with async_save=False (returns once
                  the step is committed, manifest included): the whole
                  pause of the training loop
  async_block_s   Checkpointer.save with async_save=True until it returns
                  (device -> host copy; the write continues in the
                  background), the pause an async save costs
  async_total_s   the same save until it is committed (wait)

and reports the medians and the extra pause per step of synchronous saves,
(sync_save_s - async_block_s) / every_steps, at the config's every_steps.

  PYTHONPATH=. python3 benchmarks/ckpt_save.py \\
      --config configs/finetune.py:bc,mid --json \\
      benchmarks/results/ckpt_save_mid.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", default="configs/finetune.py:bc,tiny")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--every-steps", type=int, default=None,
                  help="default: the config's ckpt.every_steps")
  ap.add_argument("--dir", default=None, help="where to write (default: a "
                  "temporary folder; the disk decides the figures)")
  ap.add_argument("--json", default=None)
  args = ap.parse_args(argv)
  import jax
  import numpy as np
  from lmdm_jax.configs import load_config
  from lmdm_jax.train import checkpoint, parallel
  from lmdm_jax.train import state as train_state
  from lmdm_jax.train.loop import select_devices
  cfg = load_config(args.config)
  tx = train_state.make_optimizer(cfg.optim)
  mesh = parallel.make_mesh(select_devices(1))
  state = parallel.put_replicated(
      train_state.init_state(cfg, tx, lambda *a: None), mesh)
  nbytes = int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(
      jax.device_get(state))))
  root = tempfile.mkdtemp(dir=args.dir)
  out = {"sync_save_s": [], "async_block_s": [], "async_total_s": []}
  try:
    for r in range(args.repeats):
      for mode in ("sync", "async"):
        d = os.path.join(root, f"{mode}{r}")
        ck = checkpoint.Checkpointer(d, 1, 1, async_save=mode == "async")
        t0 = time.perf_counter()
        ck.save(1, state, {"next_batch": 1})
        t1 = time.perf_counter()
        ck.wait()
        t2 = time.perf_counter()
        ck.close()
        if mode == "sync":
          out["sync_save_s"].append(t1 - t0)
        else:
          out["async_block_s"].append(t1 - t0)
          out["async_total_s"].append(t2 - t0)
        shutil.rmtree(d)
  finally:
    shutil.rmtree(root, ignore_errors=True)
  every = int(args.every_steps or cfg.ckpt.every_steps)
  med = {k: statistics.median(v) for k, v in out.items()}
  d0 = jax.devices()[0]
  result = {
      "config": args.config, "state_bytes": nbytes, "every_steps": every,
      "repeats": args.repeats, "runs": out,
      **{k + "_median": v for k, v in med.items()},
      "sync_extra_pause_per_step_s": (med["sync_save_s"] -
                                      med["async_block_s"]) / every,
      "device": f"{d0.platform} {getattr(d0, 'device_kind', '')}".strip(),
      "jax": jax.__version__,
  }
  text = json.dumps(result, indent=2)
  if args.json:
    with open(args.json, "w") as f:
      f.write(text + "\n")
  print(text)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
