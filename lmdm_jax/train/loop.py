"""The training loop: `train(cfg, workdir)`.

  workdir/config.json     the resolved config of the run (written once the
                          run has started or resumed: a config that fails
                          to restore the checkpoints leaves it unchanged)
  workdir/metrics.jsonl   one line per log step: step, loss, grad_norm, lr,
                          step_s, examples_per_s, frames_per_s (strict
                          JSON: a non-finite value is null; on resume from
                          step s, rows after s are dropped, so every step
                          appears once)
  workdir/tb/             TensorBoard events (if tensorboardX is installed)
  workdir/ckpt/<step>/    orbax checkpoints (state + data pipeline state)
  workdir/samples/        step_<N>.wav every `samples.every_steps` steps

A run resumes from the newest readable checkpoint in workdir automatically
(an unreadable newest step is named and skipped with a warning, see
checkpoint.py). Faults:

  SIGTERM (preemption) to any process makes every process save at the end
    of the current step (the flag is all-gathered each step) and raise
    `Preempted`; `lmdm train` then logs "preempted at step N" and exits
    with EXIT_PREEMPTED (143 = 128 + SIGTERM, what schedulers read as
    "terminated", distinct from 0 = finished and 1 = failed).
  SIGKILL loses at most `ckpt.every_steps` completed steps (saves are
    synchronous by default; `ckpt.async_save` trades that for up to
    2 * every_steps - 1, see checkpoint.py), and the resumed run is
    bit-identical to an uninterrupted one.
  A non-finite loss, gradient norm (any logged metric) or state raises
    `NonFinite` naming the first bad step, before anything is saved, so
    the last good checkpoint is never overwritten or rotated away. Each
    step folds its metrics' finiteness into a device-side "first bad step"
    scalar (no host sync per step); the host reads it at log steps and
    before every save, where the state itself is also checked.
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.data.pipeline import make_pipeline
from lmdm_jax.train import checkpoint, finetune, parallel
from lmdm_jax.train import state as train_state


EXIT_PREEMPTED = 143      # 128 + SIGTERM: `lmdm train` after a SIGTERM save


class Preempted(Exception):
  """SIGTERM: the state after `step` updates is saved; `state` holds it."""

  def __init__(self, step: int, state):
    self.step, self.state = step, state
    super().__init__(f"preempted at step {step} (checkpoint saved; run the "
                     f"same command again to resume)")


class NonFinite(FloatingPointError):
  """A non-finite loss, gradient norm or state; nothing was saved after
  `last_good` (the newest checkpoint, None if there is none)."""

  def __init__(self, message: str, step: int, last_good: Optional[int]):
    self.step, self.last_good = step, last_good
    super().__init__(message)


def _strict(v):
  """A JSON-safe copy: non-finite floats -> None (JSON has no NaN)."""
  if isinstance(v, (list, tuple)):
    return [_strict(x) for x in v]
  if isinstance(v, (float, np.floating)):
    return float(v) if np.isfinite(v) else None
  if isinstance(v, np.integer):
    return int(v)
  return v


def trim_metrics(path: str, last_step: int) -> int:
  """Rewrites `path` with the rows of step <= last_step (a resumed run
  logs the later ones again), as strict JSON (older rows may hold a bare
  NaN), without a torn last line; returns the number of rows dropped."""
  if not os.path.exists(path):
    return 0
  keep, dropped = [], 0
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
        ok = int(row["step"]) <= last_step
      except (ValueError, KeyError, TypeError):
        ok = False
      if ok:
        keep.append(json.dumps({k: _strict(v) for k, v in row.items()},
                               allow_nan=False))
      else:
        dropped += 1
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(line + "\n" for line in keep)
  os.replace(tmp, path)
  return dropped


class MetricWriter:
  """JSONL (always, strict JSON) and TensorBoard (when tensorboardX
  imports) scalars. `start`: the step a resumed run continues from; rows
  and events after it are discarded (they are logged again)."""

  def __init__(self, workdir: str, enabled: bool = True, start: int = 0):
    self.enabled = enabled
    self.f = self.tb = None
    if not enabled:
      return
    path = os.path.join(workdir, "metrics.jsonl")
    trim_metrics(path, start)
    self.f = open(path, "a")
    try:
      from tensorboardX import SummaryWriter
      self.tb = SummaryWriter(os.path.join(workdir, "tb"),
                              purge_step=start + 1 if start else None)
    except ImportError:
      self.tb = None

  def write(self, step: int, scalars: dict):
    if not self.enabled:
      return
    row = {"step": int(step), **{k: _strict(v) for k, v in scalars.items()}}
    self.f.write(json.dumps(row, allow_nan=False) + "\n")
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


@jax.jit
def _first_bad(first, metrics, done):
  """first: int32 [] (-1: all finite so far) -> the first step count
  (`done`, 1-based) whose metrics hold a non-finite value. Runs on the
  device, so the loop does not wait for the step."""
  ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in
                          jax.tree.leaves(metrics)
                          if jnp.issubdtype(x.dtype, jnp.inexact)] or
                         [jnp.bool_(True)]))
  return jnp.where((first < 0) & ~ok, done, first)


@jax.jit
def _state_finite(state):
  """Whether every float leaf of the state is finite (bool [])."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _host(x):
  """A replicated global array's value on this process."""
  return np.asarray(x.addressable_data(0))


def run(cfg, workdir: str, mesh, init: Callable[[], Any],
        abstract: Callable[[], Any], step_for: Callable[[int], Callable],
        scalars: Callable[[int, int, int, Any, dict], Optional[dict]],
        tag: str, log: Callable = print, progress: bool = True,
        stop_after: Optional[int] = None,
        after_step: Optional[Callable[[int], None]] = None,
        on_step: Optional[Callable[[int, Any], None]] = None):
  """The loop every trainer shares (stage 1, the discriminator warm-up,
  ARC-Forcing): config.json, the data pipeline, resume from the latest
  readable checkpoint, periodic / SIGTERM / final saves, the non-finite
  guard, metrics and progress.

  init() -> a fresh state (host); abstract() -> its shapes
  (`jax.eval_shape`), what a checkpoint is restored into; step_for(step) ->
  the jitted (state, batch) -> (state, metrics) of that step (ARC
  alternates players); scalars(step, done, end, metrics, timing) -> the
  scalars to log at this step, or None (not a log step); timing() reads
  the clock when called (after the metrics are fetched, so it includes the
  wait for the device): step_s, this step's wall time, and mean_step_s, the
  wall time per step since the last logged step; on_step(done, state):
  after each step (e.g. samples). Returns the final state; raises
  `Preempted` after a SIGTERM save and `NonFinite` (nothing saved) when a
  metric or the state stops being finite.
  """
  lead = jax.process_index() == 0
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"),
                                 int(cfg.ckpt.every_steps),
                                 int(cfg.ckpt.keep),
                                 async_save=bool(cfg.ckpt.get("async_save",
                                                              False)))
  pipeline = make_pipeline(cfg, jax.process_index(), jax.process_count())
  try:
    found = ckpt.restore_latest(checkpoint.abstract_like(
        abstract(), parallel.replicated(mesh)), log=log)
  except BaseException:
    pipeline.close()
    ckpt.close()
    raise
  if found is None:
    state = parallel.put_replicated(init(), mesh)
    start = 0
  else:
    start, state, data_state = found
    pipeline.set_state(data_state)
    log(f"{tag} resumed from step {start} ({workdir})")
  if lead:                # only now: a failed restore leaves it unchanged
    tmp = os.path.join(workdir, "config.json.tmp")
    with open(tmp, "w") as f:
      f.write(cfg.to_json_best_effort(indent=2))
    os.replace(tmp, os.path.join(workdir, "config.json"))
  writer = MetricWriter(workdir, enabled=lead, start=start)
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
  first_bad = parallel.put_replicated(np.full((), -1, np.int32), mesh)
  last_saved = {"step": start if found is not None else None}

  def guard(done, metrics=None, state=None):
    """NonFinite if a step so far (or `state`) was not finite."""
    bad = int(_host(first_bad))
    if bad < 0 and state is not None and not bool(_host(
        _state_finite(state))):
      bad = done
    if bad < 0:
      return
    what = ""
    if metrics is not None and bad == done:
      vals = {k: float(_host(v)) for k, v in metrics.items()
              if np.ndim(v) == 0}
      what = " (" + ", ".join(f"{k}={v:.4g}" for k, v in vals.items()) + ")"
    good = last_saved["step"]
    raise NonFinite(
        f"{tag} non-finite loss, gradient or state at step {bad}{what}: "
        f"stopping without saving; the last good checkpoint is "
        + (f"step {good} ({ckpt.step_dir(good)})" if good is not None
           else "none (nothing was saved)")
        + ". Lower optim.lr, set optim.clip_norm or check the data.",
        bad, good)

  def save(done, state, force=False):
    if not (force or ckpt.due(done)):
      return
    guard(done, state=state)
    if ckpt.save(done, state, pipeline.get_state()):
      last_saved["step"] = done

  try:
    for step in range(start, end):
      batch = next(pipeline)
      batch.pop("index")
      t0 = time.perf_counter()
      state, metrics = step_for(step)(state, parallel.put_batch(batch, mesh))
      done = step + 1
      first_bad = _first_bad(first_bad, metrics, done)

      def timing(t0=t0, t_last=t_last, steps=max(done - n_last, 1)):
        now = time.perf_counter()
        return dict(step_s=now - t0, mean_step_s=(now - t_last) / steps)

      out = scalars(step, done, end, metrics, timing)
      if out is not None:
        t_last, n_last = time.perf_counter(), done
        writer.write(done, out)
        guard(done, metrics)
        if bar is not None:
          bar.set_postfix({k: f"{v:.4f}" for k, v in out.items()
                           if k.endswith("loss")})
      if bar is not None:
        bar.update(1)
      save(done, state)
      if on_step is not None:
        on_step(done, state)
      if after_step is not None:
        ckpt.wait()
        after_step(done)
      if any_process(stop["sigterm"]):
        log(f"{tag} SIGTERM: saving step {done} and leaving")
        save(done, state, force=True)
        ckpt.wait()
        raise Preempted(done, state)
    else:
      if end == total and total > start:
        save(total, state, force=True)
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
  Raises `Preempted` (after saving) on SIGTERM and `NonFinite` (without
  saving) when training diverges; see the module docstring.
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
