"""Parameter initialisation helpers (model init and test randomisation)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.model.config import DiTConfig
from lmdm_jax.model.dit import DiT


def init_params(config: DiTConfig, key, cond_tokens: int = 1):
  """Initialises DiT parameters (SAO's init: zero output layers)."""
  n = 4
  x = jnp.zeros((1, n, config.io_channels))
  cross = (jnp.zeros((1, cond_tokens, config.cond_token_dim))
           if config.cond_token_dim else None)
  glob = (jnp.zeros((1, config.global_cond_dim))
          if config.global_cond_dim else None)
  add = (jnp.zeros((1, n, config.input_add_dim))
         if config.input_add_dim else None)
  controls = {name: jnp.zeros((1, n, dim + 1))
              for name, dim in config.controls} or None
  return DiT(config).init(key, x, jnp.zeros((1,)), cross, glob, add,
                          np.ones(n, np.float32),
                          controls=controls)["params"]


def param_shapes(config: DiTConfig, cond_tokens: int = 1):
  return jax.eval_shape(lambda: init_params(config, jax.random.PRNGKey(0),
                                            cond_tokens))


def count_params(tree) -> int:
  return int(sum(np.prod(a.shape) for a in jax.tree.leaves(tree)))


def randomize(params, key, scale: float = 1.0):
  """Every parameter random (zero-initialised layers hide bugs).

  Kernels ~ N(0, scale^2 / fan_in); norm gains ~ 1 + N(0, 0.1^2); biases
  ~ N(0, 0.1^2); Fourier weights ~ N(0, 1).
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(key, len(leaves))
  out = []
  for (path, leaf), k in zip(leaves, keys):
    name = str(path[-1].key)
    noise = jax.random.normal(k, leaf.shape, leaf.dtype)
    if name == "kernel":
      out.append(noise * scale / np.sqrt(leaf.shape[0]))
    elif name in ("gamma", "scale"):
      out.append(1.0 + 0.1 * noise)
    elif name == "weight":
      out.append(noise)
    else:
      out.append(0.1 * noise)
  return jax.tree_util.tree_unflatten(treedef, out)
