"""Reading PyTorch state dicts without torch, and strict name matching.

A state dict here is a flat {name: float32 numpy array}. `.safetensors`
files are read with `safetensors.numpy` (no torch); `.ckpt`/`.pt`/`.pth`
need torch and are opened with `torch.load(..., weights_only=True)`, which
never executes pickled code.
"""
from __future__ import annotations

import os
import re
from typing import Callable, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

from lmdm_jax.flat_tree import unflatten  # noqa: F401  (the converters' import)

StateDict = Dict[str, np.ndarray]


class ConversionError(ValueError):
  """A checkpoint does not match the model: lists every offending name."""

  def __init__(self, missing=(), unexpected=(), mismatched=(), note=""):
    self.missing, self.unexpected = list(missing), list(unexpected)
    self.mismatched = list(mismatched)
    lines = [note] if note else []
    if self.missing:
      lines.append(f"missing ({len(self.missing)}): " + ", ".join(
          self.missing))
    if self.unexpected:
      lines.append(f"unexpected ({len(self.unexpected)}): " + ", ".join(
          self.unexpected))
    if self.mismatched:
      lines.append(f"mismatched ({len(self.mismatched)}): " + ", ".join(
          f"{n} has {tuple(a)} want {tuple(b)}" for n, a, b in self.mismatched))
    super().__init__("checkpoint does not match the model:\n  "
                     + "\n  ".join(lines))


def read_state_dict(path: str) -> StateDict:
  """Loads a checkpoint into {name: float32 array}.

  Lightning `.ckpt` files keep the weights under "state_dict"; that level is
  unwrapped.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"checkpoint not found: {path}")
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file
    try:
      sd = load_file(path)
    except TypeError as e:       # bfloat16 has no numpy dtype
      raise ValueError(f"{path}: {e}; bfloat16 safetensors need torch or a "
                       f"float32/float16 export") from e
    return {k: np.asarray(v, np.float32) for k, v in sd.items()}
  if path.endswith((".ckpt", ".pt", ".pth", ".bin")):
    try:
      import torch
    except ImportError as e:
      raise ValueError(
          f"{path} is a PyTorch pickle: reading it needs torch (pip install "
          f"torch), or convert it to .safetensors first (the main install "
          f"never pulls torch)") from e
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, Mapping) and "state_dict" in sd:
      sd = sd["state_dict"]
    return {k: v.detach().float().numpy() for k, v in sd.items()
            if hasattr(v, "detach")}
  raise ValueError(f"unsupported checkpoint type {path!r}: use .safetensors "
                   f"(or .ckpt/.pt with torch installed)")


def torch_name(flax_path: str) -> str:
  """Flax parameter path -> stable-audio-tools state-dict name (no prefix).

  `to_timestep_embed_0/kernel` -> `to_timestep_embed.0.weight`,
  `transformer/layers_3/ff/proj/bias` ->
  `transformer.layers.3.ff.ff.0.proj.bias`,
  `.../q_norm/norm/scale` -> `.../q_norm.weight`.
  """
  parts = flax_path.split("/")
  leaf = parts.pop()
  if parts[-2:] == ["q_norm", "norm"] or parts[-2:] == ["k_norm", "norm"]:
    parts.pop()
  out = []
  for i, p in enumerate(parts):
    if p == "ff" and i + 1 < len(parts) and parts[i + 1] in ("proj", "out"):
      out.append("ff")
      continue
    if p == "proj" and i > 0 and parts[i - 1] == "ff":
      out.append("ff.0.proj")
      continue
    if p == "out" and i > 0 and parts[i - 1] == "ff":
      out.append("ff.2")
      continue
    m = re.fullmatch(r"(.+)_(\d+)", p)
    out.append(f"{m.group(1)}.{m.group(2)}" if m else p)
  leaf = {"kernel": "weight", "scale": "weight"}.get(leaf, leaf)
  return ".".join(out + [leaf])


def to_flax(flax_path: str, value: np.ndarray) -> np.ndarray:
  """Torch layout -> Flax layout: Linear [out,in] and 1x1 Conv1d
  [out,in,1] kernels become Dense kernels [in,out]; the rest is unchanged."""
  if flax_path.endswith("/kernel"):
    if value.ndim == 3:
      if value.shape[-1] != 1:
        raise ValueError(f"{flax_path}: only 1x1 convolutions map to Dense "
                         f"kernels, got {value.shape}")
      value = value[..., 0]
    return value.T
  return value


def flatten(tree, prefix="") -> Dict[str, object]:
  out = {}
  for k, v in tree.items():
    path = f"{prefix}/{k}" if prefix else str(k)
    if isinstance(v, Mapping):
      out.update(flatten(v, path))
    else:
      out[path] = v
  return out


def match(sd: StateDict, targets: Mapping[str, Tuple[int, ...]],
          source_name: Callable[[str], str],
          consumed_elsewhere: Iterable[str] = (),
          ignored: Callable[[str], bool] = lambda k: False,
          note: str = "",
          layout: Optional[Callable[[str, np.ndarray], np.ndarray]] = None
          ) -> Dict[str, np.ndarray]:
  """Fills every target from `sd`, strictly.

  Args:
    sd: source state dict.
    targets: flax path -> wanted (Flax-layout) shape.
    source_name: flax path -> source key.
    consumed_elsewhere: source keys the caller reads itself (buffers).
    ignored: source keys deliberately dropped (another model's weights).
    layout: (flax path, source array) -> Flax-layout array; default
      `to_flax` (Linear and 1x1 conv kernels transposed). With a custom
      layout, mismatched shapes are reported in Flax layout.
  Returns flat {flax path: array}; raises ConversionError naming every
  missing, unexpected and mismatched tensor at once.
  """
  out, missing, mismatched = {}, [], []
  used = set(consumed_elsewhere)
  for path, shape in targets.items():
    key = source_name(path)
    if key not in sd:
      missing.append(key)
      continue
    used.add(key)
    value = sd[key]
    want = tuple(shape)
    if layout is not None:
      try:
        value = layout(path, value)
      except ValueError:
        pass
      if tuple(value.shape) != want:
        mismatched.append((key, sd[key].shape, want))
      else:
        out[path] = np.ascontiguousarray(value, np.float32)
      continue
    if path.endswith("/kernel"):          # report shapes in torch layout
      want = want[::-1] + ((1,) if value.ndim == 3 else ())
    if tuple(value.shape) != want:
      mismatched.append((key, value.shape, want))
      continue
    out[path] = np.ascontiguousarray(to_flax(path, value), np.float32)
  unexpected = sorted(k for k in sd if k not in used and not ignored(k))
  if missing or unexpected or mismatched:
    raise ConversionError(sorted(missing), unexpected, mismatched, note)
  return out

