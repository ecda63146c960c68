"""Checkpoints: orbax CheckpointManager behind a small interface.

A checkpoint at step n holds the TrainState after n updates ("state") and
the data pipeline state ("data", JSON: the next batch index), so resuming
from it continues bit-identically: same batches, same randomness (every
step's keys derive from state.rng and state.step).

  ckpt = Checkpointer(workdir / "ckpt", every_steps=500, keep=3)
  step, state, data = ckpt.restore_latest(abstract_state, log)  # or None
  state, data = ckpt.restore(step, abstract_state)  # one step, no fallback
  ckpt.maybe_save(step, state, data)             # periodic
  ckpt.save(step, state, data)                   # now (end, SIGTERM)

Save policy (what a SIGKILL can lose). By default saves are synchronous:
`save` returns once the step's directory is committed (orbax writes to a
temporary folder and renames it), so when step n+1 starts, checkpoint n is
on disk. A SIGKILL therefore loses at most `every_steps` completed steps
(exactly: the steps after the newest committed periodic save; a kill
during the save of step n loses n's save and resumes from n - every_steps).
With `async_save=True` the write overlaps the next steps (orbax waits for
the previous save before starting the next), and a SIGKILL can lose up to
2 * every_steps - 1 steps (save n still uncommitted when the run dies
before n + every_steps). benchmarks/ckpt_save.py measures what synchronous
saves cost (benchmarks/results/ckpt_save_*.json).

Integrity. After a save commits, the lead process writes
<step>/lmdm_files.json (every file's size). `restore` checks it first, so a
truncated or missing file is named (step, file) instead of failing deep in
TensorStore; any other failure to read a step is reported with the step
and, where the error names one, the file. `restore_latest` tries the steps
newest first: when the newest is unreadable but an older one restores, it
warns (step, file, reason), moves the unreadable steps to
<ckpt>.corrupt/<step> (so the next saves of those steps are not skipped
and the evidence is kept) and resumes from the older step. If no step
restores (typically a changed config: every step fails the same way)
nothing is moved and `RestoreError` says why for the newest step.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from typing import Callable, Optional

import jax
import orbax.checkpoint as ocp

MANIFEST = "lmdm_files.json"


class RestoreError(RuntimeError):
  """A checkpoint step that cannot be restored; .step, .file, .reason."""

  def __init__(self, step: int, file: str, reason: str):
    self.step, self.file, self.reason = step, file, reason
    super().__init__(f"checkpoint step {step} is unreadable ({file}): "
                     f"{reason}")


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0][:300] if text else ''}"


class Checkpointer:

  def __init__(self, directory: str, every_steps: int, keep: int,
               async_save: bool = False, lead: Optional[bool] = None):
    if every_steps < 1:
      raise ValueError(f"ckpt.every_steps must be >= 1, got {every_steps}")
    if keep < 1:
      raise ValueError(f"ckpt.keep must be >= 1, got {keep}")
    self.directory = os.path.abspath(directory)
    self.every_steps = every_steps
    self.async_save = bool(async_save)
    self.lead = jax.process_index() == 0 if lead is None else lead
    self._unlisted = []            # saved steps without a manifest yet
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self):
    return list(self.manager.all_steps())

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(int(step)))

  def save(self, step: int, state, data_state: dict) -> bool:
    """Saves now; returns once committed unless async_save (then `wait`
    or `close` finishes it)."""
    if step in self.manager.all_steps():
      return False
    saved = self.manager.save(
        step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_state)), force=True)
    if saved:
      if self.async_save:            # orbax waited for the previous save
        for s in self._unlisted:
          self._write_manifest(s)
        self._unlisted = []
      self._unlisted.append(int(step))
      if not self.async_save:
        self.wait()
    return saved

  def due(self, step: int) -> bool:
    """Whether `maybe_save(step, ...)` would save."""
    return step % self.every_steps == 0 and step not in self.all_steps()

  def maybe_save(self, step: int, state, data_state: dict) -> bool:
    if step % self.every_steps:
      return False
    return self.save(step, state, data_state)

  # -- integrity -----------------------------------------------------------
  def _write_manifest(self, step: int) -> None:
    d = self.step_dir(step)
    if not self.lead or not os.path.isdir(d):
      return                         # deleted by max_to_keep meanwhile
    files = {}
    for root, _, names in os.walk(d):
      for n in names:
        p = os.path.join(root, n)
        rel = os.path.relpath(p, d)
        if rel != MANIFEST:
          files[rel] = os.path.getsize(p)
    tmp = os.path.join(d, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
      json.dump({"step": int(step), "sizes": files}, f)
    os.replace(tmp, os.path.join(d, MANIFEST))

  def verify(self, step: int) -> None:
    """RestoreError naming the first missing or truncated file of `step`
    (per its manifest; steps saved before manifests existed pass)."""
    d = self.step_dir(step)
    path = os.path.join(d, MANIFEST)
    if not os.path.exists(path):
      return
    try:
      with open(path) as f:
        sizes = json.load(f)["sizes"]
    except (OSError, ValueError, KeyError) as e:
      raise RestoreError(step, path, f"manifest unreadable: "
                         f"{_first_line(e)}") from e
    for rel, size in sorted(sizes.items()):
      p = os.path.join(d, rel)
      if not os.path.exists(p):
        raise RestoreError(step, p, "file missing")
      got = os.path.getsize(p)
      if got != size:
        raise RestoreError(step, p, f"truncated or changed: {got} bytes, "
                           f"{size} when saved")

  def restore(self, step: int, abstract_state):
    """abstract_state: ShapeDtypeStructs (with shardings) of the state.
    RestoreError (step, file, reason) if the step cannot be read."""
    self.verify(step)
    try:
      out = self.manager.restore(
          step, args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract_state),
              data=ocp.args.JsonRestore()))
    except Exception as e:  # noqa: BLE001  (orbax/TensorStore raise many)
      d = self.step_dir(step)
      named = re.findall(re.escape(d) + r"/[^\s'\"<>,)]*", str(e))
      raise RestoreError(step, named[0] if named else d,
                         _first_line(e)) from e
    return out["state"], dict(out["data"])

  def restore_latest(self, abstract_state, log: Callable = print):
    """(step, state, data) of the newest step that restores, or None when
    there is no checkpoint. Unreadable newer steps are reported with
    `log`, and moved aside (see the module docstring); RestoreError if no
    step restores."""
    steps = sorted(self.all_steps(), reverse=True)
    if not steps:
      return None
    failed = []
    for step in steps:
      try:
        state, data = self.restore(step, abstract_state)
      except RestoreError as e:
        failed.append(e)
        continue
      for e in failed:
        log(f"[ckpt] WARNING: {e}; resuming from step {step} instead")
        self._move_aside(e.step)
      if failed:
        self.manager.reload()
      return step, state, data
    first = failed[0]
    raise RestoreError(
        first.step, first.file,
        f"{first.reason} (and no older step restores either: "
        f"{[e.step for e in failed]}; if the config changed since these "
        f"were written, use the run's own config, saved in the workdir's "
        f"config.json, or a new workdir)")

  def _move_aside(self, step: int) -> None:
    if self.lead:
      dest = os.path.join(self.directory + ".corrupt",
                          f"{step}-{time.strftime('%Y%m%dT%H%M%S')}")
      os.makedirs(os.path.dirname(dest), exist_ok=True)
      shutil.move(self.step_dir(step), dest)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"ckpt_move_aside_{step}")

  def wait(self):
    self.manager.wait_until_finished()
    for step in self._unlisted:
      self._write_manifest(step)
    self._unlisted = []

  def close(self):
    self.wait()
    self.manager.close()


def abstract_like(tree, sharding):
  """ShapeDtypeStructs of `tree` placed with `sharding` (for restore)."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      tree)
