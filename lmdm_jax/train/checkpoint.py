"""Checkpoints: orbax CheckpointManager behind a small interface.

A checkpoint at step n holds the TrainState after n updates ("state") and
the data pipeline state ("data", JSON: the next batch index), so resuming
from it continues bit-identically: same batches, same randomness (every
step's keys derive from state.rng and state.step).

  ckpt = Checkpointer(workdir / "ckpt", every_steps=500, keep=3)
  step = ckpt.latest_step()                      # None on a fresh run
  state, data = ckpt.restore(step, abstract_state)
  ckpt.maybe_save(step, state, data)             # periodic
  ckpt.save(step, state, data)                   # now (end, SIGTERM)
"""
from __future__ import annotations

import os
from typing import Optional

import jax
import orbax.checkpoint as ocp


class Checkpointer:

  def __init__(self, directory: str, every_steps: int, keep: int):
    if every_steps < 1:
      raise ValueError(f"ckpt.every_steps must be >= 1, got {every_steps}")
    if keep < 1:
      raise ValueError(f"ckpt.keep must be >= 1, got {keep}")
    self.every_steps = every_steps
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self):
    return list(self.manager.all_steps())

  def save(self, step: int, state, data_state: dict) -> bool:
    """Saves now (asynchronously; `wait` or `close` to finish)."""
    if step in self.manager.all_steps():
      return False
    return self.manager.save(
        step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_state)), force=True)

  def maybe_save(self, step: int, state, data_state: dict) -> bool:
    if step % self.every_steps:
      return False
    return self.save(step, state, data_state)

  def restore(self, step: int, abstract_state):
    """abstract_state: ShapeDtypeStructs (with shardings) of the state."""
    out = self.manager.restore(
        step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=ocp.args.JsonRestore()))
    return out["state"], dict(out["data"])

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(tree, sharding):
  """ShapeDtypeStructs of `tree` placed with `sharding` (for restore)."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      tree)
