"""`lmdm train` (registered in lmdm_jax/cli.py).

  lmdm train --config configs/finetune.py:bc --workdir W \
      --config.data.dir=DATA --config.train.batch_size=64

`--config.a.b=value` overrides any config field (value parsed as the type
of the field it replaces).

`lmdm train` exits 0 when the run reached train.steps (or --stop-after),
143 after a SIGTERM (preempted: the step is saved, "preempted at step N";
run the same command again to resume) and 1 when training diverged (a
non-finite loss, gradient or state; nothing saved after the last good
checkpoint) or no checkpoint of the workdir can be restored.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

_PREFIX = "--config."


class _OverrideParser(argparse.ArgumentParser):
  """Collects `--config.a.b=v` arguments into `namespace.overrides`."""

  def parse_known_args(self, args=None, namespace=None):
    args = list(sys.argv[1:] if args is None else args)
    overrides = [a for a in args if a.startswith(_PREFIX)]
    rest = [a for a in args if not a.startswith(_PREFIX)]
    ns, extra = super().parse_known_args(rest, namespace)
    ns.overrides = list(getattr(ns, "overrides", None) or []) + overrides
    return ns, extra


def _type_name(old) -> str:
  if isinstance(old, bool):
    return "a boolean (true/false, yes/no, 1/0)"
  if isinstance(old, int):
    return "an integer"
  if isinstance(old, float):
    return "a number"
  if isinstance(old, (tuple, list)):
    return f"a {type(old).__name__} literal such as {tuple(old)!r}"
  return type(old).__name__


def _parse_value(old, text: str):
  """`text` as the type of the value it replaces (ValueError if it is
  not one)."""
  import ast
  if isinstance(old, bool):
    if text.lower() in ("1", "true", "yes"):
      return True
    if text.lower() in ("0", "false", "no"):
      return False
    raise ValueError(text)
  if isinstance(old, int):
    return int(text)
  if isinstance(old, float):
    return float(text)
  if isinstance(old, (tuple, list)):
    value = ast.literal_eval(text)
    if not isinstance(value, (tuple, list)):
      raise ValueError(text)
    return type(old)(value)
  return text


def apply_overrides(cfg, overrides):
  """Applies ["--config.a.b=v", ...] to a ConfigDict in place; a bad one
  raises ValueError naming the field, the value and the type expected."""
  for item in overrides:
    key, sep, text = item[len(_PREFIX):].partition("=")
    if not sep:
      raise ValueError(f"override {item!r} must look like "
                       f"--config.a.b=value")
    *path, leaf = key.split(".")
    node = cfg
    for p in path:
      if p not in node or not hasattr(node[p], "keys"):
        raise ValueError(f"unknown config field {key!r}")
      node = node[p]
    if leaf not in node:
      raise ValueError(f"unknown config field {key!r}")
    old = node[leaf]
    if hasattr(old, "keys"):
      raise ValueError(f"--config.{key} is a group of fields "
                       f"({', '.join(sorted(old.keys()))}); override one "
                       f"of them, e.g. --config.{key}.FIELD=value")
    try:
      node[leaf] = _parse_value(old, text)
    except (ValueError, TypeError, SyntaxError) as e:
      raise ValueError(f"--config.{key}={text!r}: expected "
                       f"{_type_name(old)} (the field is now {old!r})"
                       ) from e
  return cfg


def params_digest(params) -> str:
  """sha1 of this process's copy of (replicated) params: equal digests
  across processes mean bit-identical replicas."""
  import hashlib
  import jax
  import numpy as np
  h = hashlib.sha1()
  for x in jax.tree.leaves(params):
    h.update(np.ascontiguousarray(x.addressable_data(0)).tobytes())
  return h.hexdigest()


def _init_distributed(args):
  import jax
  if args.coordinator:
    jax.distributed.initialize(args.coordinator, args.num_processes,
                               args.process_id)
  elif args.distributed:
    jax.distributed.initialize()     # TPU pods / SLURM: auto-detected


def _train(args) -> int:
  import jax
  _init_distributed(args)
  from lmdm_jax.configs import load_config
  from lmdm_jax.train import loop, objective
  cfg = apply_overrides(load_config(args.config), args.overrides)
  log = (lambda *a: print(*a, file=sys.stderr, flush=True))
  log(f"[train] {jax.process_count()} process(es), {jax.device_count()} "
      f"devices ({jax.devices()[0].platform}); workdir {args.workdir}")
  hang = None
  if args.hang_after_step is not None:
    def hang(step):
      if step == args.hang_after_step:
        log(f"[train] HANG after step {step}")
        while True:            # the kill test SIGKILLs us here
          time.sleep(1)
  from lmdm_jax.train.checkpoint import RestoreError
  try:
    state = objective.train(cfg, args.workdir, log=log,
                            progress=not args.no_progress,
                            stop_after=args.stop_after, after_step=hang)
  except loop.Preempted as e:
    log(f"[train] {e}")
    return loop.EXIT_PREEMPTED
  except loop.NonFinite as e:
    log(str(e))
    return 1
  except RestoreError as e:
    log(f"[train] error: {e}")
    return 1
  params, _ = objective.exported_params(cfg, state)
  log(f"[train] finished at step {int(state.step)}; params sha1 "
      f"{params_digest(params)}")
  return 0


def add_arguments(t: argparse.ArgumentParser) -> None:
  """`lmdm train`'s arguments (registered in lmdm_jax/cli.py, which also
  takes `--config.a.b=v` overrides)."""
  t.add_argument("--config", required=True,
                 help="configs/finetune.py:bc[,tiny]")
  t.add_argument("--workdir", required=True)
  t.add_argument("--no-progress", action="store_true")
  t.add_argument("--stop-after", type=int, default=None,
                 help="leave after this many steps of this invocation")
  t.add_argument("--coordinator", default="",
                 help="host:port of process 0 (multi-process runs)")
  t.add_argument("--num-processes", type=int, default=None)
  t.add_argument("--process-id", type=int, default=None)
  t.add_argument("--distributed", action="store_true",
                 help="jax.distributed.initialize() with auto-detection")
  t.add_argument("--hang-after-step", type=int, default=None,
                 help=argparse.SUPPRESS)   # tests: block here to be killed
