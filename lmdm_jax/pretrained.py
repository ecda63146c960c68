"""Trained-model packages: what `lmdm export` writes and `lmdm generate` reads.

A package is a directory:

  model.json   format, DiT config, geometry, cond_tokens, text encoder spec
               (with the training vocabulary), codec name and kwargs, frame
               rate, generation defaults, and provenance (config, step,
               commands, data)
  params.npz   flat float32 arrays "dit/..." (EMA parameters when the run
               kept them), readable with numpy alone

The embedded demo model ships as such a package in lmdm_jax/assets/demo/,
the sketch demo model (sketch controls; also a partner, weakly used) in
lmdm_jax/assets/sketch/ and the jam demo model (chorale accompaniment that
uses its partner) in lmdm_jax/assets/jam/; `load("demo")`,
`load("sketch")` and `load("jam")` name them from anywhere (always the
shipped ones: a folder of that name in the working directory is read only
when given as a path, "./demo"), and
`for_controls` picks the one a command's controls need.
`load` also accepts a `lmdm convert sao` directory (config.json +
params.npz); such a model needs its text encoder and codec given separately.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

import numpy as np

FORMAT = "lmdm_jax.model/1"
DEMO_DIR = os.path.join(os.path.dirname(__file__), "assets", "demo")
SHIPPED = {name: os.path.join(os.path.dirname(__file__), "assets", name)
           for name in ("demo", "sketch", "jam")}


@dataclasses.dataclass
class Pretrained:
  """A loaded package. params: {"dit": tree of jnp arrays}."""
  dit: Any                    # DiTConfig
  geometry: Any               # Geometry
  cond_tokens: int
  params: Dict[str, Any]
  text: Dict[str, Any]        # {"encoder": name, ...}
  codec: Dict[str, Any]       # {"name": ..., "kwargs": {...}}
  defaults: Dict[str, Any]
  meta: Dict[str, Any]
  path: str

  def text_encoder(self):
    """Host callable text -> [cond_tokens, cond_token_dim], with
    `.unknown_words(text)` where the encoder knows its vocabulary."""
    name = self.text.get("encoder", "")
    if name == "hashed_words":
      from lmdm_jax.text.hashed import HashedWords
      return HashedWords(int(self.text["dim"]), int(self.text["max_tokens"]),
                         vocabulary=self.text.get("vocabulary", ()))
    raise ValueError(f"{self.path}: text encoder {name!r} is not available "
                     f"offline in this package; known: 'hashed_words'")

  def make_codec(self):
    from lmdm_jax.codecs import get_codec
    return get_codec(self.codec["name"], **self.codec.get("kwargs", {}))


def _flatten(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, key + "/"))
    else:
      out[key] = np.asarray(v, np.float32)
  return out


def _unflatten(flat):
  tree: Dict[str, Any] = {}
  for k, v in flat.items():
    node = tree
    *parents, leaf = k.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree


def save(out: str, *, dit_params, cfg, text: dict, codec: dict,
         defaults: dict, meta: dict) -> str:
  """Writes a package from a finetune-style config and DiT params."""
  os.makedirs(out, exist_ok=True)
  import flax
  params = flax.core.unfreeze(dit_params) if hasattr(
      flax.core, "unfreeze") else dit_params
  flat = _flatten({"dit": params})
  tmp = os.path.join(out, "params.tmp.npz")
  np.savez(tmp, **flat)
  os.replace(tmp, os.path.join(out, "params.npz"))
  doc = {"format": FORMAT, "dit": cfg.model.to_dict(),
         "geometry": cfg.geometry.to_dict(),
         "cond_tokens": int(cfg.cond_tokens),
         "frame_rate": float(cfg.frame_rate), "text": text, "codec": codec,
         "defaults": defaults, "meta": meta}
  with open(os.path.join(out, "model.json"), "w") as f:
    json.dump(doc, f, indent=1, sort_keys=True)
  return out


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
  import jax.numpy as jnp
  from lmdm_jax.model.config import DiTConfig, Geometry
  path = resolve(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"model directory {path!r} does not exist")
  model_json = os.path.join(path, "model.json")
  if not os.path.exists(model_json):
    if os.path.exists(os.path.join(path, "config.json")):
      return _load_converted(path)
    raise FileNotFoundError(
        f"{path!r} holds neither model.json (an `lmdm export` package) nor "
        f"config.json (an `lmdm convert sao` directory)")
  with open(model_json) as f:
    doc = json.load(f)
  if doc.get("format") != FORMAT:
    raise ValueError(f"{model_json}: format {doc.get('format')!r}, this "
                     f"version reads {FORMAT!r}")
  with np.load(os.path.join(path, "params.npz")) as z:
    params = _unflatten({k: jnp.asarray(z[k]) for k in z.files})
  return Pretrained(
      dit=DiTConfig.from_dict(doc["dit"]),
      geometry=Geometry.from_dict(doc["geometry"]),
      cond_tokens=int(doc["cond_tokens"]), params=params, text=doc["text"],
      codec=doc["codec"], defaults=doc.get("defaults", {}),
      meta=doc.get("meta", {}), path=path)


def _load_converted(path: str) -> Pretrained:
  """A `lmdm convert sao` directory: SAO geometry defaults, T5 text and the
  Oobleck codec must come from their own converted directories."""
  from lmdm_jax.convert import load_converted
  from lmdm_jax.model.config import Geometry
  cfg, params = load_converted(path)
  geometry = Geometry(mode="bc", context=192, block=48, window_chunks=4)
  return Pretrained(dit=cfg.dit, geometry=geometry, cond_tokens=65,
                    params={"dit": params["dit"]},
                    text={"encoder": "t5", "needs": "--t5-dir"},
                    codec={"name": "oobleck", "needs": "--vae-dir"},
                    defaults={"steps": 8, "cfg_scale": 1.0},
                    meta={"source": "lmdm convert sao"}, path=path)
