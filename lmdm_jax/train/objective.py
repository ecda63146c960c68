"""The training objectives: a config's `objective` is looked up here, and
only here.

  objective  spec (static; the jitted step closes over it)   trained by
  finetune   finetune.FinetuneSpec  stage 1, the LMDM        loop.train
  base       arc.warmup.BaseSpec    discriminator warm-up    loop.train
  arc        arc.objective.ARCSpec  ARC-Forcing, G and D     arc.train.train

`lmdm train` (`train`), `lmdm export` (`abstract_state`, `exported_params`)
and the tests use this table. Every spec has `from_config(cfg)`; the
one-player ones (stage 1's data-parallel step, `parallel.make_train_step`)
also `loss(params, batch, keys)` and `merge_initial(fresh, loaded, log)`.

Imports go one way: objective -> {loop, arc.train} -> {parallel, state,
checkpoint}, and the specs (finetune, arc.warmup, arc.objective) -> state;
no training module imports this one (tests/test_imports.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Tuple

import jax

from lmdm_jax.configs import resolve_init_model
from lmdm_jax.train import finetune, loop
from lmdm_jax.train import state as train_state
from lmdm_jax.train.arc import train as arc_train
from lmdm_jax.train.arc.objective import ARCSpec
from lmdm_jax.train.arc.warmup import BaseSpec

DEFAULT = "finetune"


@dataclasses.dataclass(frozen=True)
class Objective:
  """spec: the spec class; train(cfg, workdir, **loop kwargs) -> state;
  abstract_state(cfg) -> the state's shapes (restoring a checkpoint);
  params(state) -> (trained params, their EMA or None)."""
  spec: type
  train: Callable[..., Any]
  abstract_state: Callable[[Any], Any]
  params: Callable[[Any], Tuple[Any, Any]]


def _one_player(spec_cls) -> Objective:
  def train(cfg, workdir, **kw):
    return loop.train(cfg, workdir, spec=spec_cls.from_config(cfg), **kw)

  def abstract_state(cfg):
    tx = train_state.make_optimizer(cfg.optim)
    scratch = cfg.copy_and_resolve_references()
    with scratch.unlocked():
      scratch.init.params = ""
    return jax.eval_shape(
        lambda: train_state.init_state(scratch, tx, lambda *a: None))

  return Objective(spec_cls, train, abstract_state,
                   lambda s: (s.params, s.ema_params))


def _arc_abstract_state(cfg):
  spec = ARCSpec.from_config(cfg)
  return jax.eval_shape(lambda: arc_train.init_state(
      cfg, spec, train_state.make_optimizer(cfg.optim_g),
      train_state.make_optimizer(cfg.optim_d), load=False))


OBJECTIVES: Dict[str, Objective] = {
    "finetune": _one_player(finetune.FinetuneSpec),
    "base": _one_player(BaseSpec),
    # ARC-Forcing exports the generator (its EMA when kept).
    "arc": Objective(ARCSpec, arc_train.train, _arc_abstract_state,
                     lambda s: (s.g_params, s.g_ema)),
}


def name(cfg) -> str:
  """The config's objective (default "finetune"), validated."""
  n = str(cfg.get("objective", DEFAULT))
  if n not in OBJECTIVES:
    raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got "
                     f"{n!r}")
  return n


def of(cfg) -> Objective:
  return OBJECTIVES[name(cfg)]


def spec_for(cfg):
  """The static spec of the config's objective."""
  return of(cfg).spec.from_config(cfg)


def train(cfg, workdir: str, **kw):
  """Trains (or resumes) the config's objective; keyword arguments as
  `lmdm_jax.train.loop.train` (log, progress, stop_after, after_step).
  `init.model = "package"` is resolved first (configs.resolve_init_model:
  the DiT's shape from the init package, in place)."""
  resolve_init_model(cfg)
  return of(cfg).train(cfg, workdir, **kw)


def abstract_state(cfg):
  resolve_init_model(cfg)
  return of(cfg).abstract_state(cfg)


def exported_params(cfg, state):
  """(params, ema or None) that `lmdm export` packages from a state."""
  return of(cfg).params(state)
