"""Training-time control augmentation (Sketch2Sound's recipe), in JAX.

Per example and per control, independently:

  dropout        with probability `dropout` the control is absent for the
                 whole window (values and mask 0), so the model learns every
                 subset of controls, including none (= the model without
                 controls, exactly: absent controls add nothing).
  median filter  with probability `median_p` the control curve is median
                 filtered along time with an odd kernel drawn uniformly from
                 {3, 5, ..., median_max} frames, so coarse, hand-drawn or
                 hummed sketches look like training inputs. Each value
                 channel is filtered separately, the mask by majority; the
                 window's edges repeat the edge frame. Not applied to the
                 partner's latents.

All functions work on one example (call under vmap for a batch): packed
controls [T, dim + 1] = [values, mask] (lmdm_jax/model/control_inputs.py).
"""
from __future__ import annotations

from typing import Dict, Sequence

import jax
import jax.numpy as jnp

from lmdm_jax.model.control_inputs import PARTNER


def check_params(dropout: float, median_p: float, median_max: int,
                 dropout_name: str = "control_dropout") -> None:
  for name, p in ((dropout_name, dropout), ("median_p", median_p)):
    if not 0.0 <= p <= 1.0:
      raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
  if not (isinstance(median_max, int) and median_max >= 1
          and median_max % 2 == 1):
    raise ValueError(f"median_max must be an odd kernel size >= 1 frames, "
                     f"got {median_max!r}")


def median_filter(x, kernel, max_kernel: int):
  """Median filter of x [T, d] along T with an odd, traced `kernel` size
  (1 <= kernel <= max_kernel, max_kernel odd and static; kernel 1 returns x).

  Each output takes the max_kernel frames around it (edges repeated); the
  (max_kernel - kernel) / 2 outermost on each side are replaced by -inf and
  +inf, so the middle of the sorted window is the median of the `kernel`
  central frames.
  """
  half = max_kernel // 2
  t = x.shape[0]
  xp = jnp.pad(x, [(half, half), (0, 0)], mode="edge")
  idx = jnp.arange(t)[:, None] + jnp.arange(max_kernel)[None, :]
  win = xp[idx]                                        # [T, K, d]
  off = jnp.arange(max_kernel) - half                  # -half..half
  outside = jnp.abs(off) > (kernel // 2)
  fill = jnp.where(off < 0, -jnp.inf, jnp.inf)
  win = jnp.where(outside[None, :, None], fill[None, :, None], win)
  return jnp.sort(win, axis=1)[:, half]


def draw(key, names: Sequence[str], dropout, median_p: float,
         median_max: int) -> Dict[str, jnp.ndarray]:
  """Random choices of one example: keep [n] (1 = control given) and
  kernel [n] (odd median kernel sizes, 1 = no filtering), in `names` order.
  `dropout`: one probability, or one per name."""
  n = len(names)
  k_drop, k_med, k_size = jax.random.split(key, 3)
  p = jnp.broadcast_to(jnp.asarray(dropout, jnp.float32), (n,))
  keep = (jax.random.uniform(k_drop, (n,)) >= p).astype(jnp.float32)
  sizes = max((median_max - 1) // 2, 1)
  size = 2 * jax.random.randint(k_size, (n,), 1, sizes + 1) + 1
  use = jax.random.uniform(k_med, (n,)) < median_p
  kernel = jnp.where(use & (median_max >= 3), size, 1)
  return {"keep": keep, "kernel": kernel.astype(jnp.int32)}


def apply(packed, keep, kernel, max_kernel: int, filter_: bool = True):
  """One control of one example: [T, dim + 1] -> augmented [T, dim + 1]."""
  values, mask = packed[:, :-1], packed[:, -1:]
  if filter_ and max_kernel >= 3:
    values = median_filter(values, kernel, max_kernel)
    mask = (median_filter(mask, kernel, max_kernel) >= 0.5).astype(
        mask.dtype)
  mask = mask * keep
  return jnp.concatenate([values * mask, mask], axis=-1)


def apply_all(controls: Dict[str, jnp.ndarray], names: Sequence[str],
              draws: Dict[str, jnp.ndarray], max_kernel: int):
  """Every control of one example (names in `draw` order; a name missing
  from `controls` stays missing)."""
  out = {}
  for i, name in enumerate(names):
    if name in controls:
      out[name] = apply(controls[name], draws["keep"][i],
                        draws["kernel"][i], max_kernel,
                        filter_=name != PARTNER)
  return out
