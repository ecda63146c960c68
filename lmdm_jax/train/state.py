"""Train state pytree, optimizer and parameter initialisation.

TrainState holds everything that changes during training and must be
checkpointed for an exact resume: the float32 master parameters, the optax
state, the step counter and the base PRNG key (every step's randomness is
`fold_in(rng, step)`, so nothing else about randomness needs saving), and
optionally an EMA of the parameters. Compute may run in bfloat16
(`model.dtype`); parameters and optimizer moments stay float32.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lmdm_jax import pretrained
from lmdm_jax.configs import dit_config
from lmdm_jax.model.init import init_params


@flax.struct.dataclass
class TrainState:
  """step []: int32 updates taken; rng [2]: uint32 base key; ema_params is
  None when EMA is off."""
  step: jnp.ndarray
  params: Any
  opt_state: Any
  rng: jnp.ndarray
  ema_params: Optional[Any] = None


def lr_schedule(optim) -> Callable[[Any], Any]:
  """Linear warmup to `lr`, then constant or cosine decay to lr*final_ratio.

  optim: lr, warmup_steps, decay ("constant" | "cosine"), decay_steps,
  final_ratio.
  """
  lr, warm = float(optim.lr), int(optim.warmup_steps)
  if not (np.isfinite(lr) and lr > 0):      # NaN fails every comparison
    raise ValueError(f"optim.lr must be finite and > 0, got {lr}")
  if warm < 0:
    raise ValueError(f"optim.warmup_steps must be >= 0, got {warm}")
  if optim.decay == "constant":
    after = optax.constant_schedule(lr)
  elif optim.decay == "cosine":
    if int(optim.decay_steps) <= 0:
      raise ValueError("cosine decay needs optim.decay_steps > 0")
    after = optax.cosine_decay_schedule(lr, int(optim.decay_steps),
                                        alpha=float(optim.final_ratio))
  else:
    raise ValueError(f"optim.decay must be 'constant' or 'cosine', got "
                     f"{optim.decay!r}")
  if not warm:
    return after
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warm), after], [warm])


def check_optim(optim) -> None:
  """ValueError naming the first out-of-range optimizer field (NaN and
  inf included: a NaN compares False with everything, so `x <= 0` alone
  lets it through and the run trains NaN)."""
  ok = {"b1": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "b2": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "eps": (lambda v: v > 0, "> 0"),
        "weight_decay": (lambda v: v >= 0, ">= 0"),
        "clip_norm": (lambda v: v >= 0, ">= 0 (0: off)"),
        "final_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]")}
  for name, (test, text) in ok.items():
    if name in optim:
      v = float(optim[name])
      if not (np.isfinite(v) and test(v)):
        raise ValueError(f"optim.{name} must be finite and {text}, got {v}")
  lr_schedule(optim)


def make_optimizer(optim) -> optax.GradientTransformation:
  """AdamW on the schedule, after optional global-norm clipping."""
  check_optim(optim)
  parts = []
  if float(optim.clip_norm) > 0:
    parts.append(optax.clip_by_global_norm(float(optim.clip_norm)))
  parts.append(optax.adamw(lr_schedule(optim), b1=float(optim.b1),
                           b2=float(optim.b2), eps=float(optim.eps),
                           weight_decay=float(optim.weight_decay)))
  return optax.chain(*parts)


def merge_params(fresh, loaded, log=print):
  """Takes every leaf of `loaded` whose path exists in `fresh`.

  Leaves missing from `loaded` keep their fresh initialisation (e.g. LMDM's
  `to_input_add_embed`, absent from SAO checkpoints, keeps torch's default
  Linear init). A shape mismatch or an unknown loaded leaf is a ValueError.
  """
  flat_f = flax.traverse_util.flatten_dict(flax.core.unfreeze(fresh), sep="/")
  flat_l = flax.traverse_util.flatten_dict(flax.core.unfreeze(loaded),
                                           sep="/")
  unknown = sorted(set(flat_l) - set(flat_f))
  if unknown:
    raise ValueError(f"checkpoint has parameters this model lacks: "
                     f"{unknown[:5]}{'...' if len(unknown) > 5 else ''}")
  out = {}
  for k, v in flat_f.items():
    if k in flat_l:
      if tuple(np.shape(flat_l[k])) != tuple(v.shape):
        raise ValueError(f"parameter {k}: checkpoint shape "
                         f"{np.shape(flat_l[k])} != model shape {v.shape}")
      out[k] = jnp.asarray(flat_l[k], v.dtype)
    else:
      out[k] = v
  missing = sorted(set(flat_f) - set(flat_l))
  if missing:
    log(f"[init] {len(missing)} parameters not in the checkpoint keep their "
        f"fresh init: {missing}")
  return flax.traverse_util.unflatten_dict(out, sep="/")


def load_params(path: str):
  """Restores a params tree saved with orbax (StandardSave of a dict)."""
  import orbax.checkpoint as ocp
  return ocp.StandardCheckpointer().restore(path)


def load_params_any(path: str):
  """A params tree from an orbax params directory, a model package
  (model.json + params.npz) or a `lmdm convert sao` directory (params.npz
  with dit/ arrays)."""
  if os.path.exists(os.path.join(path, "model.json")):
    pkg = pretrained.load(path)
    params = dict(pkg.params["dit"])
    if pkg.meta.get("input_add_added"):
      # A converted base DiT: its input-add layer is the package's zeros,
      # not trained; the run initialises it (torch's default Linear init,
      # as the paper's code does when it loads SAO Small).
      params.pop("to_input_add_embed", None)
    return params
  if os.path.exists(os.path.join(path, "params.npz")):
    from lmdm_jax.package import read_npz
    params = read_npz(os.path.join(path, "params.npz"), path, "DiT")
    return params["dit"] if "dit" in params else params
  return load_params(path)


def backbone_from(fresh, loaded, log=print):
  """The leaves of `loaded` (an LMDM's or a base DiT's params) that a
  smaller tree `fresh` has: leaves `fresh` lacks (input-add path, layers
  after a discriminator's exit layer, output layers) are dropped and
  reported. A base model or a discriminator backbone starts this way."""
  ff = flax.traverse_util.flatten_dict(flax.core.unfreeze(fresh), sep="/")
  fl = flax.traverse_util.flatten_dict(flax.core.unfreeze(loaded), sep="/")
  dropped = sorted(set(fl) - set(ff))
  if dropped:
    log(f"[init] {len(dropped)} loaded parameters unused by this model "
        f"(input-add path, layers after the exit layer, output)")
  kept = {k: v for k, v in fl.items() if k in ff}
  return merge_params(fresh, flax.traverse_util.unflatten_dict(kept, sep="/"),
                      log)


def init_state(cfg, tx: optax.GradientTransformation, log=print,
               merge: Callable = merge_params) -> TrainState:
  """Fresh state: params from scratch (SAO init) or from cfg.init.params,
  taken into the fresh tree by `merge` (the objective's
  `merge_initial`: stage 1 takes every leaf, the base model drops an
  LMDM's input-add path)."""
  key = jax.random.PRNGKey(int(cfg.seed))
  k_init, k_train = jax.random.split(key)
  params = init_params(dit_config(cfg), k_init, int(cfg.cond_tokens))
  if cfg.init.params:
    params = merge(params, load_params_any(cfg.init.params), log)
  ema = params if float(cfg.train.ema_decay) > 0 else None
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), rng=k_train, ema_params=ema)
