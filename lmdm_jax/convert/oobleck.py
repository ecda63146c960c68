"""stable-audio-tools Oobleck VAE weights -> lmdm_jax Oobleck params.

  lmdm convert oobleck --checkpoint model.safetensors \
      --model-config model_config.json --out vae/

Reads `pretransform.model.{encoder,decoder}.*` (a full SAO checkpoint) or
bare `{encoder,decoder}.*` (an autoencoder checkpoint). Weight norm is
folded: w = g v / |v| with the norm over every axis but the first (the
old `weight_g`/`weight_v` names and the newer
`parametrizations.weight.original0/1` are both read). Conv1d weights
[out, in, k] become kernels [k, in, out]; ConvTranspose1d weights
[in, out, k] are flipped along k and become [k, in, out]. Strict: every
tensor of the VAE is consumed, everything else is ignored.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.codecs.oobleck_model import (OobleckConfig, OobleckDecoder,
                                           OobleckEncoder)
from lmdm_jax.convert.state_dict import (StateDict, flatten, match,
                                         read_state_dict, torch_name,
                                         unflatten)


def fold_weight_norm(sd: StateDict) -> StateDict:
  """Replaces every (g, v) weight-norm pair by the plain `weight`."""
  out, pairs = {}, {}
  for k, v in sd.items():
    for g_suffix, v_suffix in ((".weight_g", ".weight_v"),
                               (".parametrizations.weight.original0",
                                ".parametrizations.weight.original1")):
      if k.endswith(g_suffix) or k.endswith(v_suffix):
        is_g = k.endswith(g_suffix)
        base = k[:-len(g_suffix if is_g else v_suffix)]
        pairs.setdefault(base, {})["g" if is_g else "v"] = v
        break
    else:
      out[k] = v
  for base, p in pairs.items():
    if set(p) != {"g", "v"}:
      out.update({f"{base}.weight_{n}": a for n, a in p.items()})  # reported
      continue
    v = p["v"].astype(np.float64)
    norm = np.sqrt(np.sum(v * v, axis=tuple(range(1, v.ndim)), keepdims=True))
    out[base + ".weight"] = (p["g"] * v / norm).astype(np.float32)
  return out


def config_from_sao(model_config: Mapping[str, Any]) -> OobleckConfig:
  """Reads the pretransform (or autoencoder) section of a SAO config."""
  m = model_config.get("model", model_config)
  if "pretransform" in m:
    m = m["pretransform"]["config"]
  enc = m.get("encoder", {})
  dec = m.get("decoder", {})
  if enc.get("type", "oobleck") != "oobleck" or dec.get(
      "type", "oobleck") != "oobleck":
    raise ValueError("only Oobleck encoders/decoders convert")
  e, d = enc.get("config", {}), dec.get("config", {})
  if e.get("antialias_activation") or d.get("antialias_activation") or \
      d.get("use_nearest_upsample"):
    raise ValueError("antialiased activations and nearest upsampling are not"
                     " supported")
  cfg = OobleckConfig(
      audio_channels=int(d.get("out_channels", 2)),
      channels=int(d.get("channels", 128)),
      c_mults=tuple(d.get("c_mults", (1, 2, 4, 8))),
      strides=tuple(d.get("strides", (2, 4, 8, 8))),
      latent_dim=int(d.get("latent_dim", 32)),
      use_snake=bool(d.get("use_snake", False)),
      final_tanh=bool(d.get("final_tanh", True)))
  want_enc = dict(in_channels=cfg.audio_channels, channels=cfg.channels,
                  c_mults=list(cfg.c_mults), strides=list(cfg.strides),
                  latent_dim=2 * cfg.latent_dim, use_snake=cfg.use_snake)
  diff = {k: (e[k], v) for k, v in want_enc.items()
          if k in e and (list(e[k]) if isinstance(v, list) else e[k]) != v}
  if diff:
    raise ValueError(f"encoder config does not mirror the decoder (VAE "
                     f"encoder emits 2 * latent_dim): {diff}")
  return cfg


def param_shapes(cfg: OobleckConfig):
  x = jnp.zeros((1, cfg.hop, cfg.audio_channels))
  z = jnp.zeros((1, 2, cfg.latent_dim))
  return {
      "encoder": jax.eval_shape(
          lambda: OobleckEncoder(cfg).init(jax.random.PRNGKey(0), x))[
              "params"],
      "decoder": jax.eval_shape(
          lambda: OobleckDecoder(cfg).init(jax.random.PRNGKey(0), z))[
              "params"]}


def _is_transposed(path: str, cfg: OobleckConfig) -> bool:
  parts = path.split("/")
  if parts[0] != "decoder" or len(parts) != 4 or parts[2] != "layers_1":
    return False
  return 1 <= int(parts[1].split("_")[1]) <= len(cfg.strides)


def convert_state_dict(sd: StateDict, cfg: OobleckConfig,
                       prefix: Optional[str] = None):
  """Strict conversion -> {"encoder": params, "decoder": params} (numpy)."""
  if prefix is None:
    prefix = ("pretransform.model." if any(
        k.startswith("pretransform.model.") for k in sd) else "")
  sd = fold_weight_norm({k: v for k, v in sd.items()
                         if k.startswith(prefix + "encoder.")
                         or k.startswith(prefix + "decoder.")})
  targets = {p: a.shape for p, a in flatten(param_shapes(cfg)).items()}

  def layout(path, v):
    if path.endswith("/kernel"):
      if _is_transposed(path, cfg):
        return v[:, :, ::-1].transpose(2, 0, 1)
      return v.transpose(2, 1, 0)
    return v

  flat = match(sd, targets, lambda p: prefix + torch_name(p), layout=layout,
               note="Oobleck VAE")
  return unflatten(flat)


def convert_oobleck(checkpoint: str, model_config: str, out_dir: str) -> dict:
  with open(model_config) as f:
    cfg = config_from_sao(json.load(f))
  params = convert_state_dict(read_state_dict(checkpoint), cfg)
  os.makedirs(out_dir, exist_ok=True)
  flat = flatten(params)
  np.savez(os.path.join(out_dir, "params.npz"), **flat)
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump({"oobleck": dataclasses.asdict(cfg),
               "converted_from": os.path.abspath(checkpoint)}, f, indent=2)
  return {"out": out_dir, "tensors": len(flat),
          "params": int(sum(a.size for a in flat.values())),
          "oobleck": dataclasses.asdict(cfg)}


def load_oobleck(directory: str):
  """-> (OobleckConfig, {"encoder": ..., "decoder": ...} jnp params)."""
  with open(os.path.join(directory, "config.json")) as f:
    d = json.load(f)["oobleck"]
  d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
  with np.load(os.path.join(directory, "params.npz")) as z:
    flat = {k: jnp.asarray(z[k]) for k in z.files}
  return OobleckConfig(**d), unflatten(flat)
