"""`lmdm bench train`: training step time and throughput on this machine.

Runs the real data-parallel step (synthetic latents, no checkpoints) on a
mesh of the first `devices` devices and reports compile time, step time
(median and mean over `steps` timed steps after one warm-up step),
examples/s, latent frames/s, parameter count and peak memory (device
memory stats where the backend has them, else the process's peak RSS).
"""
from __future__ import annotations

import resource
import statistics
import time

import jax
import numpy as np

from lmdm_jax.data.pipeline import make_pipeline
from lmdm_jax.model.init import count_params
from lmdm_jax.train import finetune, parallel
from lmdm_jax.train import state as train_state
from lmdm_jax.train.loop import check_config


def _peak_memory(devices):
  stats = [d.memory_stats() or {} for d in devices]
  peaks = [s.get("peak_bytes_in_use") for s in stats]
  if all(p is not None for p in peaks):
    return {"peak_device_bytes": int(max(peaks)), "source": "device"}
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {"peak_process_rss_bytes": int(rss), "source": "ru_maxrss"}


def run(cfg, config_name: str, steps: int, devices: int = 1,
        batch_size=None) -> dict:
  if steps < 1:
    raise ValueError(f"--steps must be >= 1, got {steps}")
  if not 1 <= devices <= jax.device_count():
    raise ValueError(f"--devices must be in [1, {jax.device_count()}], got "
                     f"{devices}")
  cfg = cfg.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.data.source = "synthetic"
    cfg.init.params = ""
    if batch_size:
      cfg.train.batch_size = int(batch_size)
  mesh = parallel.make_mesh(jax.devices()[:devices])
  check_config(cfg, devices)
  spec = finetune.FinetuneSpec.from_config(cfg)
  tx = train_state.make_optimizer(cfg.optim)
  state = parallel.put_replicated(train_state.init_state(cfg, tx), mesh)
  step = parallel.make_train_step(spec, tx, mesh, int(cfg.train.accum_steps),
                                  float(cfg.train.ema_decay))
  pipe = make_pipeline(cfg)
  batches = []
  for _ in range(min(steps + 1, 4)):
    b = next(pipe)
    b.pop("index")
    batches.append(parallel.put_batch(b, mesh))
  pipe.close()
  t0 = time.perf_counter()
  state, m = step(state, batches[0])
  jax.block_until_ready((state, m))
  first = time.perf_counter() - t0
  times = []
  for i in range(steps):
    t0 = time.perf_counter()
    state, m = step(state, batches[(i + 1) % len(batches)])
    jax.block_until_ready((state, m))
    times.append(time.perf_counter() - t0)
  b = int(cfg.train.batch_size)
  frames = cfg.geometry.context + cfg.geometry.block
  med = statistics.median(times)
  d0 = jax.devices()[0]
  return {
      "config": config_name, "mode": cfg.geometry.mode,
      "params": count_params(state.params), "devices": devices,
      "global_batch": b, "accum_steps": int(cfg.train.accum_steps),
      "window_frames": frames, "compute_dtype": cfg.model.dtype,
      "first_step_s (compile + run)": first, "timed_steps": steps,
      "step_s_median": med, "step_s_mean": float(np.mean(times)),
      "examples_per_s": b / med, "frames_per_s": b * frames / med,
      "final_loss": float(m["loss"]),
      "memory": _peak_memory(jax.devices()[:devices]),
      "device": f"{d0.platform} {getattr(d0, 'device_kind', '')}".strip(),
      "jax": jax.__version__,
  }
