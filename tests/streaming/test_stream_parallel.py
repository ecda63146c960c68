"""Streams sharded over 8 simulated devices equal the single-device run."""
import jax
import numpy as np
import pytest

from helpers import random_controls, tiny_setup
import parallel_streams as parallel
from lmdm_jax.streaming.sampler import Stream


@pytest.mark.parametrize("cfg_branch", [False, True])
def test_sharded_streams_equal_one_device(tiny_cfg, cfg_branch):
  assert jax.device_count() == 8
  spec, params = tiny_setup(tiny_cfg, "bc", batch=8, steps=2,
                            cfg_branch=cfg_branch)
  ctx = jax.random.normal(jax.random.PRNGKey(0),
                          (8, spec.geometry.context, spec.model.io_channels))
  ctl = random_controls(spec, jax.random.PRNGKey(1), cfg_scale=2.0)
  stream = Stream(spec)
  state = stream.prime(params, ctx, ctl)
  ref = []
  for _ in range(3):
    state, x = stream.block(params, state, ctl)
    ref.append(np.asarray(x))

  mesh = parallel.data_mesh()
  p = parallel.replicate(params, mesh)
  c = parallel.shard_controls(ctl, mesh)
  state = parallel.shard_state(stream.prime(params, ctx, ctl), mesh)
  out = []
  for _ in range(3):
    state, x = stream.block(p, state, c)
    out.append(x)
  assert len(out[-1].sharding.device_set) == 8
  assert len(state.kv.k.sharding.device_set) == 8
  np.testing.assert_allclose(np.concatenate(ref, 1),
                             np.concatenate([np.asarray(o) for o in out], 1),
                             atol=5e-5, rtol=0)  # reduction order differs
