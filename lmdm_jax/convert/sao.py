"""stable-audio-tools DiT checkpoints -> lmdm_jax parameters.

  out = convert_sao("model.safetensors", "model_config.json", "converted/")
  config, params = load_converted("converted/")
  v = DiT(config.dit).apply({"params": params["dit"]}, x, t, cross, glob)

What is read from the checkpoint:
  model.model.*                             the DiT (`DiffusionTransformer`)
  conditioner.conditioners.<id>.*           number conditioners
  model.model.transformer.rotary_pos_emb.inv_freq   checked against the
      config's rotary dim and used to set `rope_base` (the LMDM fork's
      default base differs from stable-audio-tools')
  *.beta of SAO's LayerNorms                zero buffers: checked to be zero
Explicitly ignored: `pretransform.*` (the VAE, converted separately) and the
`_extra_state`-free buffers listed above. Anything else that is left over,
any parameter not found and any shape that differs is reported in one
`ConversionError`.

Output directory: `params.npz` (flat "dit/transformer/layers_0/..." and
"conditioners/<id>/..." arrays, float32, readable with numpy alone) and
`config.json` (our DiT config, the conditioner specs and the source model
config).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.convert.state_dict import (ConversionError, StateDict, flatten,
                                         match, read_state_dict, torch_name,
                                         unflatten)
from lmdm_jax.model.config import DiTConfig

DIT_PREFIX = "model.model."
COND_PREFIX = "conditioner.conditioners."
IGNORED_PREFIXES = ("pretransform.",)

# DiffusionTransformer / ContinuousTransformer options we implement, with
# the only values we accept for the ones we do not.
_UNSUPPORTED = {
    "patch_size": 1, "input_concat_dim": 0, "prepend_cond_dim": 0,
    "global_cond_type": "prepend", "timestep_cond_type": "global",
    "transformer_type": "continuous_transformer", "project_global_cond": True,
    "num_memory_tokens": 0, "use_sinusoidal_emb": False,
    "use_abs_pos_emb": False, "conformer": False, "causal": False,
    "rotary_pos_emb": True,
}


@dataclasses.dataclass(frozen=True)
class ConvertedConfig:
  """What a converted directory holds besides the weights.

  Attributes:
    dit: our DiT config.
    conditioners: SAO-style specs [{"id", "type", "config"}] of the
      conditioners whose weights were converted (number conditioners).
    cross_ids, global_ids: SAO's cross-attention and global conditioning ids
      (text ids included: their encoder is converted separately).
    sample_rate, sample_size: from the source model config.
    source: the source model config as read.
  """
  dit: DiTConfig
  conditioners: Tuple[Dict[str, Any], ...]
  cross_ids: Tuple[str, ...]
  global_ids: Tuple[str, ...]
  sample_rate: Optional[int]
  sample_size: Optional[int]
  source: Dict[str, Any]

  def to_json(self) -> dict:
    return {"dit": dataclasses.asdict(self.dit),
            "conditioners": list(self.conditioners),
            "cross_ids": list(self.cross_ids),
            "global_ids": list(self.global_ids),
            "sample_rate": self.sample_rate, "sample_size": self.sample_size,
            "source": self.source}

  @classmethod
  def from_json(cls, d: Mapping[str, Any]) -> "ConvertedConfig":
    return cls(DiTConfig.from_dict(d["dit"]), tuple(d["conditioners"]),
               tuple(d["cross_ids"]), tuple(d["global_ids"]),
               d.get("sample_rate"), d.get("sample_size"), d.get("source", {}))


def dit_config_from_sao(model_config: Mapping[str, Any]) -> ConvertedConfig:
  """Reads a stable-audio-tools `diffusion_cond` model config.

  Accepts the whole file ({"model": {"diffusion": ...}}) or its "model"
  entry. Raises ValueError for DiT options this port does not implement.
  """
  m = model_config.get("model", model_config)
  if "diffusion" not in m:
    raise ValueError("model config has no model.diffusion section (is it a "
                     "stable-audio-tools diffusion_cond config?)")
  diff = m["diffusion"]
  if diff.get("type", "dit") != "dit":
    raise ValueError(f"only DiT diffusion models convert, got "
                     f"{diff.get('type')!r}")
  c = dict(diff.get("config", {}))
  attn = dict(c.pop("attn_kwargs", {}) or {})
  ff = dict(c.pop("ff_kwargs", {}) or {})
  bad = [f"{k}={c[k]!r} (supported: {v!r})" for k, v in _UNSUPPORTED.items()
         if k in c and c[k] != v]
  qk = attn.pop("qk_norm", c.pop("qk_norm", "none"))
  if qk not in ("ln", "none"):
    bad.append(f"qk_norm={qk!r} (supported: 'ln', 'none')")
  if ff.get("mult", 4) != 4 or ff.get("no_bias", False) or not ff.get(
      "glu", True):
    bad.append(f"ff_kwargs={ff!r} (supported: SwiGLU, mult 4, biases)")
  if bad:
    raise ValueError("unsupported DiT options: " + "; ".join(bad))
  input_add = diff.get("input_add_ids", c.get("input_add_dims", []))
  input_add_dim = int(sum(d for _, d in input_add)) if input_add and \
      isinstance(input_add[0], (list, tuple)) else int(c.get(
          "input_add_dim", 0))
  embed_dim = int(c.get("embed_dim", 768))
  dit = DiTConfig(
      io_channels=int(c.get("io_channels", 32)), embed_dim=embed_dim,
      depth=int(c.get("depth", 12)), num_heads=int(c.get("num_heads", 8)),
      cond_token_dim=int(c.get("cond_token_dim", 0)),
      project_cond_tokens=bool(c.get("project_cond_tokens", True)),
      global_cond_dim=int(c.get("global_cond_dim", 0)),
      input_add_dim=input_add_dim, postpend=bool(c.get("postpend", False)),
      qk_norm=qk, ff_mult=4, timestep_features_dim=256)
  cond = m.get("conditioning", {}) or {}
  specs = tuple({"id": s["id"], "type": s["type"],
                 "config": dict(s.get("config", {}))}
                for s in cond.get("configs", []) if s["type"] == "number")
  for s in specs:
    s["config"].setdefault("output_dim", cond.get("cond_dim", 768))
  return ConvertedConfig(
      dit, specs, tuple(diff.get("cross_attention_cond_ids", [])),
      tuple(diff.get("global_cond_ids", [])), model_config.get("sample_rate"),
      model_config.get("sample_size"), dict(model_config))


def _rope_base(sd: StateDict, key: str, rotary_dim: int) -> float:
  """Recovers RoPE's base from the inv_freq buffer and checks its layout."""
  inv = np.asarray(sd[key], np.float64)
  if inv.shape != (rotary_dim // 2,):
    raise ConversionError(mismatched=[(key, inv.shape, (rotary_dim // 2,))],
                          note="rotary dim differs from max(head_dim/2, 32)")
  base = float(inv[1] ** (-rotary_dim / 2.0))
  want = 1.0 / base ** (np.arange(0, rotary_dim, 2) / rotary_dim)
  if not np.allclose(inv, want, rtol=1e-4):
    raise ValueError(f"{key} is not a standard RoPE frequency table "
                     f"(xpos or rescaled bases are not supported)")
  # Snap to the usual round bases (1e4, 1e6) that float32 storage blurs.
  rounded = float(f"{base:.4g}")
  return rounded if abs(rounded - base) / base < 1e-3 else base


def _check_zero_buffers(sd: StateDict, keys: List[str]):
  bad = [k for k in keys if np.any(sd[k] != 0)]
  if bad:
    raise ValueError(f"LayerNorm beta buffers must be zero (SAO LayerNorm "
                     f"has no bias), nonzero: {bad}")


def convert_state_dict(sd: StateDict, cfg: ConvertedConfig):
  """Strict conversion. Returns (config with rope_base set, params).

  params = {"dit": DiT params, "conditioners": {id: params}} (numpy).
  """
  from lmdm_jax.conditioners import build_conditioners
  from lmdm_jax.model.init import param_shapes
  inv_key = DIT_PREFIX + "transformer.rotary_pos_emb.inv_freq"
  beta_keys = [k for k in sd if k.startswith(DIT_PREFIX) and k.endswith(
      (".pre_norm.beta", ".cross_attend_norm.beta", ".ff_norm.beta"))]
  buffers = ([inv_key] if inv_key in sd else []) + beta_keys
  targets = {"dit/" + p: a.shape
             for p, a in flatten(param_shapes(cfg.dit)).items()}
  if cfg.conditioners:
    conds = build_conditioners(cfg.conditioners,
                               [s["id"] for s in cfg.conditioners])
    shapes = jax.eval_shape(lambda: conds.init(
        jax.random.PRNGKey(0),
        {s["id"]: jnp.zeros((1,)) for s in cfg.conditioners}))["params"]
    targets.update({"conditioners/" + p: a.shape
                    for p, a in flatten(shapes).items()})

  def source(path):
    head, rest = path.split("/", 1)
    if head == "dit":
      return DIT_PREFIX + torch_name(rest)
    return COND_PREFIX + torch_name(rest)

  missing_inv = [] if inv_key in sd else [inv_key]
  try:
    flat = match(sd, targets, source, consumed_elsewhere=buffers,
                 ignored=lambda k: k.startswith(IGNORED_PREFIXES))
  except ConversionError as e:
    raise ConversionError(sorted(e.missing + missing_inv), e.unexpected,
                          e.mismatched) from None
  if missing_inv:
    raise ConversionError(missing_inv)
  _check_zero_buffers(sd, beta_keys)
  base = _rope_base(sd, inv_key, cfg.dit.rotary_dim)
  cfg = dataclasses.replace(cfg, dit=dataclasses.replace(cfg.dit,
                                                         rope_base=base))
  tree = unflatten(flat)
  tree.setdefault("conditioners", {})
  return cfg, tree


def convert_sao(checkpoint: str, model_config: str, out_dir: str) -> dict:
  """Converts a checkpoint file + its model config JSON into `out_dir`."""
  with open(model_config) as f:
    cfg = dit_config_from_sao(json.load(f))
  sd = read_state_dict(checkpoint)
  cfg, params = convert_state_dict(sd, cfg)
  os.makedirs(out_dir, exist_ok=True)
  flat = flatten(params)
  np.savez(os.path.join(out_dir, "params.npz"), **flat)
  meta = cfg.to_json()
  meta["converted_from"] = os.path.abspath(checkpoint)
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(meta, f, indent=2)
  n = int(sum(a.size for a in flat.values()))
  ignored = sorted({k.split(".")[0] for k in sd
                    if k.startswith(IGNORED_PREFIXES)})
  return {"out": out_dir, "tensors": len(flat), "params": n,
          "rope_base": cfg.dit.rope_base, "ignored_prefixes": ignored,
          "dit": dataclasses.asdict(cfg.dit)}


def load_converted(directory: str):
  """Directory written by `convert_sao` -> (ConvertedConfig, params).

  params = {"dit": ..., "conditioners": {id: ...}} of jnp float32 arrays.
  """
  with open(os.path.join(directory, "config.json")) as f:
    cfg = ConvertedConfig.from_json(json.load(f))
  with np.load(os.path.join(directory, "params.npz")) as z:
    flat = {k: jnp.asarray(z[k]) for k in z.files}
  params = unflatten(flat)
  params.setdefault("conditioners", {})
  return cfg, params
