"""The training loop: `train(cfg, workdir)`.

  workdir/config.json     the resolved config of the run
  workdir/metrics.jsonl   one line per log step: step, loss, grad_norm, lr,
                          step_s, examples_per_s, frames_per_s
  workdir/tb/             TensorBoard events (if tensorboardX is installed)
  workdir/ckpt/<step>/    orbax checkpoints (state + data pipeline state)

A run resumes from the latest checkpoint in workdir automatically. SIGTERM
(preemption) to any process makes every process save at the end of the
current step and exit (the flag is all-gathered each step);
SIGKILL loses at most the steps since the last periodic checkpoint, and the
resumed run is bit-identical to an uninterrupted one (see checkpoint.py).
  workdir/samples/        step_<N>.wav every `samples.every_steps` steps
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Any, Callable, Optional

import jax
import numpy as np

from lmdm_jax.data.pipeline import make_pipeline
from lmdm_jax.train import checkpoint, finetune, parallel
from lmdm_jax.train import state as train_state


class MetricWriter:
  """JSONL (always) and TensorBoard (when tensorboardX imports) scalars."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.f = self.tb = None
    if not enabled:
      return
    self.f = open(os.path.join(workdir, "metrics.jsonl"), "a")
    try:
      from tensorboardX import SummaryWriter
      self.tb = SummaryWriter(os.path.join(workdir, "tb"))
    except ImportError:
      self.tb = None

  def write(self, step: int, scalars: dict):
    if not self.enabled:
      return
    self.f.write(json.dumps({"step": step, **scalars}) + "\n")
    self.f.flush()
    if self.tb is not None:
      for k, v in scalars.items():
        if isinstance(v, (list, tuple)):     # e.g. a histogram's counts
          for i, x in enumerate(v):
            self.tb.add_scalar(f"{k}/{i}", x, step)
        else:
          self.tb.add_scalar(k, v, step)

  def close(self):
    if self.f is not None:
      self.f.close()
    if self.tb is not None:
      self.tb.close()


_STEP_CACHE = {}


def cached_train_step(spec, cfg, mesh):
  """make_train_step, memoised on everything it depends on.

  A resumed run in the same process (tests, notebooks) reuses the compiled
  step instead of compiling it again.
  """
  key = (spec, cfg.optim.to_json(sort_keys=True),
         tuple(d.id for d in mesh.devices.flat), int(cfg.train.accum_steps),
         float(cfg.train.ema_decay))
  if key not in _STEP_CACHE:
    _STEP_CACHE[key] = parallel.make_train_step(
        spec, train_state.make_optimizer(cfg.optim), mesh,
        int(cfg.train.accum_steps), float(cfg.train.ema_decay),
        train_state.lr_schedule(cfg.optim))
  return _STEP_CACHE[key]


def select_devices(n: int):
  """n = -1: every device of every process; else the first n."""
  devices = jax.devices()
  if n == -1:
    return devices
  if not 1 <= n <= len(devices):
    raise ValueError(f"mesh.devices must be -1 or in [1, {len(devices)}], "
                     f"got {n}")
  if jax.process_count() > 1 and n != len(devices):
    raise ValueError("multi-process runs must use every device (-1)")
  return devices[:n]


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any (a SIGTERM may reach
  only some hosts; checkpoint saves are collective, so all must agree)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils
  flags = multihost_utils.process_allgather(np.array([flag], np.int32))
  return bool(np.any(flags))


def check_config(cfg, n_devices: int) -> None:
  b, a = int(cfg.train.batch_size), int(cfg.train.accum_steps)
  if b < 1 or a < 1:
    raise ValueError(f"train.batch_size and train.accum_steps must be >= 1, "
                     f"got {b} and {a}")
  if b % (n_devices * a):
    raise ValueError(
        f"train.batch_size {b} must be a multiple of devices x accum_steps "
        f"= {n_devices} x {a}")
  if int(cfg.train.steps) < 0:
    raise ValueError(f"train.steps must be >= 0, got {cfg.train.steps}")


def run(cfg, workdir: str, mesh, init: Callable[[], Any],
        abstract: Callable[[], Any], step_for: Callable[[int], Callable],
        scalars: Callable[[int, int, int, Any, dict], Optional[dict]],
        tag: str, log: Callable = print, progress: bool = True,
        stop_after: Optional[int] = None,
        after_step: Optional[Callable[[int], None]] = None,
        on_step: Optional[Callable[[int, Any], None]] = None):
  """The loop every trainer shares (stage 1, the discriminator warm-up,
  ARC-Forcing): config.json, the data pipeline, resume from the latest
  checkpoint, periodic / SIGTERM / final saves, metrics and progress.

  init() -> a fresh state (host); abstract() -> its shapes
  (`jax.eval_shape`), what a checkpoint is restored into; step_for(step) ->
  the jitted (state, batch) -> (state, metrics) of that step (ARC
  alternates players); scalars(step, done, end, metrics, timing) -> the
  scalars to log at this step, or None (not a log step); timing() reads
  the clock when called (after the metrics are fetched, so it includes the
  wait for the device): step_s, this step's wall time, and mean_step_s, the
  wall time per step since the last logged step; on_step(done, state):
  after each step (e.g. samples). Returns the final state.
  """
  lead = jax.process_index() == 0
  if lead:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(cfg.to_json_best_effort(indent=2))
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"),
                                 int(cfg.ckpt.every_steps),
                                 int(cfg.ckpt.keep))
  pipeline = make_pipeline(cfg, jax.process_index(), jax.process_count())
  latest = ckpt.latest_step()
  if latest is None:
    state = parallel.put_replicated(init(), mesh)
    start = 0
  else:
    state, data_state = ckpt.restore(latest, checkpoint.abstract_like(
        abstract(), parallel.replicated(mesh)))
    pipeline.set_state(data_state)
    start = int(latest)
    log(f"{tag} resumed from step {start} ({workdir})")
  writer = MetricWriter(workdir, enabled=lead)
  stop = {"sigterm": False}
  previous = signal.getsignal(signal.SIGTERM)
  try:
    signal.signal(signal.SIGTERM, lambda *_: stop.update(sigterm=True))
  except ValueError:       # not the main thread: no preemption handling
    previous = None
  total = int(cfg.train.steps)
  end = total if stop_after is None else min(total, start + stop_after)
  bar = None
  if progress and lead:
    from tqdm import tqdm
    bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)
  t_last, n_last = time.perf_counter(), start
  try:
    for step in range(start, end):
      batch = next(pipeline)
      batch.pop("index")
      t0 = time.perf_counter()
      state, metrics = step_for(step)(state, parallel.put_batch(batch, mesh))
      done = step + 1

      def timing(t0=t0, t_last=t_last, steps=max(done - n_last, 1)):
        now = time.perf_counter()
        return dict(step_s=now - t0, mean_step_s=(now - t_last) / steps)

      out = scalars(step, done, end, metrics, timing)
      if out is not None:
        t_last, n_last = time.perf_counter(), done
        writer.write(done, out)
        if bar is not None:
          bar.set_postfix({k: f"{v:.4f}" for k, v in out.items()
                           if k.endswith("loss")})
      if bar is not None:
        bar.update(1)
      ckpt.maybe_save(done, state, pipeline.get_state())
      if on_step is not None:
        on_step(done, state)
      if after_step is not None:
        ckpt.wait()
        after_step(done)
      if any_process(stop["sigterm"]):
        log(f"{tag} SIGTERM: saving step {done} and leaving")
        ckpt.save(done, state, pipeline.get_state())
        break
    else:
      if end == total and total > start:
        ckpt.save(total, state, pipeline.get_state())
  finally:
    ckpt.close()
    writer.close()
    pipeline.close()
    if bar is not None:
      bar.close()
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)
  return state


def train(cfg, workdir: str, log: Callable = print,
          progress: bool = True,
          stop_after: Optional[int] = None,
          after_step: Optional[Callable[[int], None]] = None,
          spec=None) -> train_state.TrainState:
  """Trains (or resumes) to cfg.train.steps; returns the final state.

  spec: the one-player objective to train (`lmdm_jax.train.objective`
    chooses it from the config; None: stage-1 fine-tuning, for a config
    whose objective is "finetune").

  stop_after: leave after this many steps of *this* invocation (tests and
    benchmarks), saving a checkpoint only if it falls on a periodic one.
  after_step: called with the step count after each step, once its
    checkpoint (if any) is written (tests use it to kill or signal a run).
  """
  os.makedirs(workdir, exist_ok=True)
  lead = jax.process_index() == 0
  mesh = parallel.make_mesh(select_devices(int(cfg.mesh.devices)))
  check_config(cfg, mesh.size)
  if spec is None:
    if cfg.get("objective", "finetune") != "finetune":
      raise ValueError(f"objective {cfg.objective!r}: train it through "
                       f"lmdm_jax.train.objective.train")
    spec = finetune.FinetuneSpec.from_config(cfg)
  tx = train_state.make_optimizer(cfg.optim)

  def abstract():
    scratch = cfg.copy_and_resolve_references()
    with scratch.unlocked():
      scratch.init.params = ""
    return jax.eval_shape(lambda: train_state.init_state(scratch, tx, log))

  step_fn = cached_train_step(spec, cfg, mesh)
  frames = int(cfg.data.get("window", 0) or 0) or (cfg.geometry.context +
                                                   cfg.geometry.block)
  log_every = max(int(cfg.train.log_every), 1)
  b = int(cfg.train.batch_size)

  def scalars(step, done, end, metrics, timing):
    if done % log_every and done != end:
      return None
    m = {k: float(v) for k, v in jax.device_get(metrics).items()}
    dt = timing()["mean_step_s"]
    m.update(step_s=dt, examples_per_s=b / dt, frames_per_s=b * frames / dt)
    return m

  every = int(cfg.get("samples", {}).get("every_steps", 0) or 0)

  def samples(done, state):
    if lead and every and done % every == 0:
      from lmdm_jax.train.samples import write_sample
      params = state.ema_params if state.ema_params is not None else (
          state.params)
      log(f"[train] sample: {write_sample(params, cfg, workdir, done)}")

  return run(cfg, workdir, mesh,
             lambda: train_state.init_state(cfg, tx, log, spec.merge_initial),
             abstract, lambda step: step_fn, scalars, "[train]", log=log,
             progress=progress, stop_after=stop_after, after_step=after_step,
             on_step=samples)
