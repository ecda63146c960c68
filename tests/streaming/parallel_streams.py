"""Many streams across devices: the batch axis of a stream sharded on a mesh.

Streams are independent along the batch, so a stream state and its controls
are sharded over a `data` mesh axis and the parameters replicated; the
jitted stream functions then run data-parallel with no code change (GSPMD
propagates the shardings). One host drives 8 CPU devices, a GPU node or a
TPU slice the same way.

Batch axes: context [B, ...] and controls axis 0; caches and conditioning
[depth, B*, ...] axis 1 (B* = branches * B: the CFG branches are stacked
conditional-first, so batch % devices == 0 keeps each device's rows whole).
"""
from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lmdm_jax.streaming.state import Controls, StreamState


def data_mesh(devices=None) -> Mesh:
  """A 1-D `data` mesh with automatic (GSPMD) sharding propagation."""
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), ("data",), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def _batch_axis_spec(ndim: int, axis: int) -> P:
  spec = [None] * ndim
  spec[axis] = "data"
  return P(*spec)


def shard_state(state: StreamState, mesh: Mesh) -> StreamState:
  """Places a stream state with its batch axis split over `data`."""
  n = mesh.shape["data"]

  def place(path, leaf):
    name = str(path[0].name) if hasattr(path[0], "name") else ""
    if leaf.ndim == 0:
      spec = P()
    elif name == "context":
      spec = _batch_axis_spec(leaf.ndim, 0)
    elif name == "cond" and leaf.ndim == 2:          # global_embed [B*, D]
      spec = _batch_axis_spec(leaf.ndim, 0)
    else:                                            # [depth, B*, ...]
      spec = _batch_axis_spec(leaf.ndim, 1)
    axis = spec.index("data") if "data" in spec else None
    if axis is not None and leaf.shape[axis] % n:
      raise ValueError(f"batch axis of {name} ({leaf.shape[axis]}) is not "
                       f"divisible by {n} devices")
    return jax.device_put(leaf, NamedSharding(mesh, spec))

  return jax.tree_util.tree_map_with_path(place, state)


def shard_controls(controls: Controls, mesh: Mesh) -> Controls:
  def place(leaf):
    spec = P() if leaf.ndim == 0 else _batch_axis_spec(leaf.ndim, 0)
    return jax.device_put(leaf, NamedSharding(mesh, spec))
  return jax.tree.map(place, controls)


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, P()))
