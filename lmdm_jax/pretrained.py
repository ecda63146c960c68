"""Model packages by name: the shipped demo models and any package directory.

The package format and its loader are lmdm_jax/package.py (one format for
every model: an `lmdm export` of a training run, a `lmdm package` /
`lmdm fetch` of converted Stable Audio Open weights). This module names the
shipped packages: the demo model in lmdm_jax/assets/demo/, the sketch demo
model (sketch controls; also a partner, weakly used) in
lmdm_jax/assets/sketch/ and the jam demo model (chorale accompaniment that
uses its partner) in lmdm_jax/assets/jam/; `load("demo")`, `load("sketch")`
and `load("jam")` name them from anywhere (always the shipped ones: a folder
of that name in the working directory is read only when given as a path,
"./demo"), and `for_controls` picks the one a command's controls need.
"""
from __future__ import annotations

import os
from typing import Optional

from lmdm_jax.package import (FORMAT, PackageError, Pretrained,  # noqa: F401
                              save)
from lmdm_jax import package as _package

DEMO_DIR = os.path.join(os.path.dirname(__file__), "assets", "demo")
SHIPPED = {name: os.path.join(os.path.dirname(__file__), "assets", name)
           for name in ("demo", "sketch", "jam")}


def for_controls(checkpoint: Optional[str], sketch: bool = False,
                 partner: bool = False) -> Optional[str]:
  """The model a command loads: `checkpoint` when given, else the shipped
  model that has the controls asked for — "jam" for a partner (it is
  trained to use one), "sketch" for sketch controls — else None (the demo
  model)."""
  if checkpoint is not None:
    return checkpoint
  if partner:
    return "jam"
  if sketch:
    return "sketch"
  return None


def resolve(path: Optional[str]) -> str:
  """The directory `load` reads: None -> the demo; a shipped name -> its
  package in lmdm_jax/assets; anything else is a path, as given."""
  if path is None:
    return DEMO_DIR
  return SHIPPED.get(path, path)


def load(path: Optional[str] = None) -> Pretrained:
  """A package directory (default: the shipped demo model). The bare
  names "demo", "sketch" and "jam" always mean the shipped packages, never
  a folder of that name in the working directory (give "./demo" for that),
  so what plays does not depend on where the command runs."""
  path = resolve(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"model directory {path!r} does not exist")
  if (not os.path.exists(os.path.join(path, _package.MANIFEST))
      and os.path.exists(os.path.join(path, "config.json"))):
    raise PackageError(
        path, "manifest", "this is one converted part (`lmdm convert`), not "
        "a package; assemble one with `lmdm package --dit DIR --t5-dir DIR "
        "--vae-dir DIR --out PKG` (or `lmdm fetch sao-small --out PKG`)")
  return _package.load(path)
