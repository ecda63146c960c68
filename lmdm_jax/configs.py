"""Loading ml_collections config files (`path/to/config.py[:arg]`)."""
from __future__ import annotations

import importlib.util
import os

import ml_collections

from lmdm_jax.model.config import DiTConfig, Geometry


CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs")


def load_module(path: str):
  """A config file as a module (config files are not a package: recipes
  that build on another file load it this way)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"config file not found: {path}")
  name = "_lmdm_config_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def parse_arg(arg: str, modes=("bc", "ed"), variants=("",),
              default_mode: str = "bc"):
  """A recipe's `get_config(arg)` argument "MODE,VARIANT" -> (mode,
  variant): either part may be left out ("tiny" = default mode, tiny;
  "ed" = ED, the full recipe). Unknown parts are a ValueError."""
  mode, variant = default_mode, ""
  for part in [p.strip() for p in (arg or "").split(",") if p.strip()]:
    if part in modes:
      mode = part
    elif part in variants and not variant:
      variant = part
    else:
      raise ValueError(f"config argument {arg!r}: {part!r} is neither a "
                       f"mode {tuple(modes)} nor a variant "
                       f"{tuple(v for v in variants if v)}")
  return mode, variant


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `configs/x.py` or `configs/x.py:arg` by calling get_config(arg)."""
  path, _, arg = spec.partition(":")
  module = load_module(path)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{path} defines no get_config(arg)")
  return module.get_config(arg) if arg else module.get_config()


def dit_config(cfg) -> DiTConfig:
  return DiTConfig.from_dict(cfg.model.to_dict())


def geometry(cfg, mode: str | None = None) -> Geometry:
  d = cfg.geometry.to_dict()
  if mode is not None:
    d["mode"] = mode
  return Geometry.from_dict(d)


# DiT fields that are training choices, not the checkpoint's shape: they
# stay the config's when the DiT comes from a package. postpend: LMDM puts
# the global token last where the base SAO DiT puts it first (no parameter
# depends on it; the paper's configs set `postpend: true`); dtype and remat:
# compute precision and memory.
TRAINING_CHOICES = ("postpend", "dtype", "remat")


def resolve_init_model(cfg) -> ml_collections.ConfigDict:
  """With `init.model = "package"`, the DiT (cfg.model, except the
  TRAINING_CHOICES fields), cond_tokens and frame_rate become the init
  package's (cfg.init.params), in place; the geometry stays the config's
  (a stream's context and block are a training choice). Idempotent; a
  config without the key is unchanged.

  Fine-tuning a fetched SAO-Small (or the toy test fixture, or any
  exported package) then needs no restatement of its shape.
  """
  init = cfg.get("init", None)
  how = str(init.get("model", "config")) if init is not None else "config"
  if how == "config":
    return cfg
  if how != "package":
    raise ValueError(f"init.model must be 'config' or 'package', got "
                     f"{how!r}")
  path = str(init.get("params", "") or "")
  from lmdm_jax import package
  if not path or not os.path.isfile(os.path.join(path, package.MANIFEST)):
    raise ValueError(f"init.model 'package' takes the DiT from the init "
                     f"package: --config.init.params must be a package "
                     f"directory (with {package.MANIFEST}), got {path!r}")
  doc = package.read_manifest(path)
  dit = dict(doc["dit"])
  for k in TRAINING_CHOICES:
    if k in cfg.model:
      dit[k] = cfg.model[k]
  with cfg.unlocked():
    cfg.model = ml_collections.ConfigDict(dit)
    cfg.cond_tokens = int(doc["cond_tokens"])
    if doc.get("frame_rate"):
      cfg.frame_rate = float(doc["frame_rate"])
  return cfg
