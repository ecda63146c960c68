"""Control inputs of the model: packing, validation, normalisation, the
partner visibility cut.

A model with controls (`DiTConfig.controls`, name -> dim) takes, per call, a
dict `controls` of packed arrays name -> [B, N, dim + 1]: the control's
values in the model's scale followed by one mask channel (1 = given, 0 =
absent). Each control has its own bias-free projection
(`to_control_embed_<name>`) of [values * mask, mask] added to the frames'
hidden states next to `to_input_add_embed`, so an absent control (mask 0)
adds exactly zero. A name missing from the dict is absent on every frame.

Known names and the feature each stands for (`features.py` gives them in
natural units; `normalise` maps them to the model's scale):

  loudness    1   (dB + 30) / 30          (-60 dB -> -1, 0 dB -> 1)
  brightness  1   2 * b - 1               (normalised log-Hz in [0, 1])
  pitch       1   (midi - 60) / 24; the voiced flag is the mask
  cqt_topk    n   top-k CQT magnitudes in [0, 1], as is
  partner     C   a partner's latents (jamming), as is; cut by
                  `partner_cut` at the future visibility t_f

Other names are allowed (any dim); they are used as given.

Future visibility (jamming): for the block being generated, frames
[s, s + o) of the window [context s | block o], partner frames at window
index >= s + t_f are zeroed and their mask set to 0 before the projection:
t_f = 0 shows the partner up to the start of the block (the live case:
what has been heard), t_f = o the whole block, t_f < 0 hides the last
-t_f context frames too (a live system with latency). t_f is in latent
frames, relative to the block start (the paper's +2, 0, -2 s ~ +43, 0, -43
frames at 21.53 Hz); `visibility_cutoff` bounds it to [-s, o].
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import jax.numpy as jnp
import numpy as np

PARTNER = "partner"
SCALES = {
    "loudness": lambda v: (v + 30.0) / 30.0,
    "brightness": lambda v: 2.0 * v - 1.0,
    "pitch": lambda v: (v - 60.0) / 24.0,
}


def normalise(name: str, values):
  """Natural units (features.py) -> the model's scale (see module doc)."""
  f = SCALES.get(name)
  return values if f is None else f(values)


def pack(values, mask=None):
  """values [..., N, dim], mask [..., N] (None: all given) -> [..., N,
  dim + 1] = [values * mask, mask]. Works on numpy and jax arrays."""
  xp = jnp if isinstance(values, jnp.ndarray) or isinstance(
      mask, jnp.ndarray) else np
  v = xp.asarray(values, xp.float32)
  if v.ndim < 2:
    raise ValueError(f"control values must be [..., frames, dim], got shape "
                     f"{tuple(v.shape)}")
  if mask is None:
    m = xp.ones(v.shape[:-1], xp.float32)
  else:
    m = xp.asarray(mask, xp.float32)
    if tuple(m.shape) != tuple(v.shape[:-1]):
      raise ValueError(f"control mask has shape {tuple(m.shape)}; expected "
                       f"{tuple(v.shape[:-1])} (the values' shape without "
                       f"the last axis)")
  return xp.concatenate([v * m[..., None], m[..., None]], axis=-1)


def absent(batch: int, frames: int, dim: int):
  """An absent control [batch, frames, dim + 1] (all zeros)."""
  return jnp.zeros((batch, frames, dim + 1), jnp.float32)


def all_absent(dims: Mapping[str, int], batch: int, frames: int):
  return {n: absent(batch, frames, d) for n, d in dims.items()}


def check(dims: Mapping[str, int], controls: Optional[Mapping],
          batch: Optional[int] = None, frames: Optional[int] = None,
          what: str = "controls") -> None:
  """Raises ValueError on unknown names or wrongly shaped controls.

  dims: the model's controls (name -> dim); controls: name -> [B, N, dim+1];
  batch / frames: expected B and N (None: not checked).
  """
  if controls is None:
    return
  if not isinstance(controls, Mapping):
    raise ValueError(f"{what} must be a dict name -> [batch, frames, dim+1],"
                     f" got {type(controls).__name__}")
  unknown = sorted(set(controls) - set(dims))
  if unknown:
    raise ValueError(f"unknown {what} {unknown}; this model takes "
                     f"{dict(dims) or 'no controls'}")
  for name, arr in controls.items():
    shape = tuple(np.shape(arr))
    want = (batch, frames, dims[name] + 1)
    ok = len(shape) == 3 and all(w is None or w == s
                                 for w, s in zip(want, shape))
    if not ok:
      raise ValueError(
          f"{what}[{name!r}] has shape {shape}; expected "
          f"{tuple('?' if w is None else w for w in want)} [batch, frames, "
          f"{dims[name]} values + 1 mask]")


def visibility_cutoff(context: int, block: int, t_f: int) -> int:
  """Window index from which partner frames are hidden: s + t_f."""
  if not (isinstance(t_f, (int, np.integer)) and -context <= t_f <= block):
    raise ValueError(f"partner visibility t_f must be an integer number of "
                     f"frames in [-{context}, {block}] (relative to the "
                     f"block start), got {t_f!r}")
  return context + int(t_f)


def partner_cut(packed, cutoff: int, first_frame: int = 0):
  """Hides partner frames at window index >= cutoff (values and mask 0).

  packed: [B, N, dim + 1] covering window frames first_frame ..
  first_frame + N - 1. The one place the cut is made (training windows and
  stream steps both call it).
  """
  n = packed.shape[-2]
  keep = (np.arange(first_frame, first_frame + n) < cutoff).astype(
      np.float32)
  return packed * keep[:, None]


def cut_controls(controls: Optional[Dict], cutoff: int,
                 first_frame: int = 0) -> Optional[Dict]:
  """Applies `partner_cut` to controls[PARTNER] if present."""
  if not controls or PARTNER not in controls:
    return controls
  out = dict(controls)
  out[PARTNER] = partner_cut(out[PARTNER], cutoff, first_frame)
  return out


def slice_frames(controls: Optional[Dict], start: int, stop: int):
  """Frames [start, stop) of every control (None stays None)."""
  if controls is None:
    return None
  return {n: a[:, start:stop] for n, a in controls.items()}


def pad_frames(controls: Optional[Dict], pad: int):
  """Appends `pad` absent frames to every control."""
  if controls is None or not pad:
    return controls
  return {n: jnp.pad(a, [(0, 0), (0, pad), (0, 0)])
          for n, a in controls.items()}


def tile(controls: Optional[Dict], times: int):
  """Repeats controls on the batch axis (CFG branches)."""
  if controls is None or times == 1:
    return controls
  return {n: jnp.concatenate([a] * times, axis=0)
          for n, a in controls.items()}


def known_features(latents, input_add_dim: int):
  """Input-add features [mask = 1, latents, zero pad] [..., N, A] of clean
  (known) frames [..., N, C]: what LMDM's input-add path sees for context
  frames (frames being generated get all zeros)."""
  ones = jnp.ones(latents.shape[:-1] + (1,), latents.dtype)
  feats = jnp.concatenate([ones, latents], axis=-1)
  pad = input_add_dim - feats.shape[-1]
  if pad:
    feats = jnp.pad(feats, [(0, 0)] * (feats.ndim - 1) + [(0, pad)])
  return feats
