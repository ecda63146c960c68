"""One-time export: musicnn's TF1 checkpoints -> compact float32 .npz files.

Run in a scratch environment that has TensorFlow and musicnn (never the
project's own environment; the JAX port needs neither):

  python3 -m venv /tmp/tfenv
  /tmp/tfenv/bin/pip install tensorflow-cpu tf-keras librosa soundfile
  /tmp/tfenv/bin/pip install --no-deps musicnn   # it pins numpy<1.17
  /tmp/tfenv/bin/python tools/convert_musicnn.py \
      --out lmdm_jax/eval/weights

Writes, for each model in --models (default MSD_musicnn and MTT_musicnn):
  <out>/<model lower-case>.npz   float32 weights + `tags` (unicode array)
and once:
  <out>/LICENSE.musicnn          musicnn's ISC licence, from its metadata

Only the checkpoint is read (`NewCheckpointReader`, no graph is built), so
the mapping below relies on TF1's layer auto-naming order in
musicnn/models.py:build_musicnn, which is fixed: conv2d .. conv2d_4 are the
front-end (timbral 7x38, timbral 7x67, temporal 128, 64, 32), conv2d_5 .. 7
the mid-end, dense / dense_1 the back-end; batch_normalization is the input
BN, _1 .. _5 follow the front-end convs, _6 .. _8 the mid-end convs, _9 the
pooled features and _10 the penultimate dense layer. Every shape is checked
and every non-optimizer tensor must be used, so a different checkpoint
layout fails loudly instead of converting wrongly (the parity test against
the original graph is the final check).

Batch norm (inference: moving statistics, epsilon 1e-3, the TF1 layer
default) becomes `scale = gamma / sqrt(var + eps)`, `shift = beta - mean *
scale`, computed in float64 and stored as float32. That is exact algebra:
it is not folded further into the neighbouring convs because in musicnn
every BN either follows a ReLU (conv -> relu -> BN -> max-pool) or precedes
zero padding (input BN), where folding would change the result.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

BN_EPS = 1e-3
MODELS = ("MSD_musicnn", "MTT_musicnn")

# (npz name, TF conv name, TF BN name, kernel shape with C = mid-end filters)
CONVS = [
    ("timbral_38", "conv2d", "batch_normalization_1", (7, 38, 1, 204)),
    ("timbral_67", "conv2d_1", "batch_normalization_2", (7, 67, 1, 204)),
    ("temporal_128", "conv2d_2", "batch_normalization_3", (128, 1, 1, 51)),
    ("temporal_64", "conv2d_3", "batch_normalization_4", (64, 1, 1, 51)),
    ("temporal_32", "conv2d_4", "batch_normalization_5", (32, 1, 1, 51)),
    ("mid_1", "conv2d_5", "batch_normalization_6", (7, 561, 1, 64)),
    ("mid_2", "conv2d_6", "batch_normalization_7", (7, 64, 1, 64)),
    ("mid_3", "conv2d_7", "batch_normalization_8", (7, 64, 1, 64)),
]
OTHER_BN = [("bn_input", "batch_normalization", 1),
            ("bn_pool", "batch_normalization_9", 1506),
            ("bn_dense", "batch_normalization_10", 200)]
DENSE = [("dense", "dense", (1506, 200)), ("logits", "dense_1", (200, 50))]
OPTIMIZER = ("Adam", "beta1_power", "beta2_power")


def _bn(reader, name, size):
  g, b, m, v = (reader.get_tensor(f"{name}/{k}").astype(np.float64)
                for k in ("gamma", "beta", "moving_mean",
                          "moving_variance"))
  for a in (g, b, m, v):
    if a.shape != (size,):
      raise ValueError(f"{name}: expected [{size}], got {a.shape}")
  scale = g / np.sqrt(v + BN_EPS)
  return (scale.astype(np.float32),
          (b - m * scale).astype(np.float32),
          {f"{name}/{k}" for k in ("gamma", "beta", "moving_mean",
                                   "moving_variance")})


def convert(ckpt_prefix: str, tags) -> dict:
  """-> {npz key: float32 array}; raises if any tensor is unused/missing."""
  import tensorflow as tf
  reader = tf.compat.v1.train.NewCheckpointReader(ckpt_prefix)
  names = {k for k in reader.get_variable_to_shape_map()
           if not any(o in k for o in OPTIMIZER)}
  used, out = set(), {}

  def get(name, shape):
    a = reader.get_tensor(name)
    if tuple(a.shape) != tuple(shape):
      raise ValueError(f"{name}: expected {shape}, got {a.shape}")
    used.add(name)
    return a.astype(np.float32)

  for key, conv, bn, kshape in CONVS:
    k = get(f"{conv}/kernel", kshape)
    # [kt, kf, 1, out]: timbral keep [kt, kf, out]; temporal/mid-end
    # convolve over time only -> [kt, in, out].
    out[f"{key}/kernel"] = k[:, :, 0, :]
    out[f"{key}/bias"] = get(f"{conv}/bias", kshape[-1:])
    s, t, n = _bn(reader, bn, kshape[-1])
    out[f"{key}/bn_scale"], out[f"{key}/bn_shift"] = s, t
    used |= n
  for key, bn, size in OTHER_BN:
    s, t, n = _bn(reader, bn, size)
    out[f"{key}/scale"], out[f"{key}/shift"] = s, t
    used |= n
  for key, dense, shape in DENSE:
    out[f"{key}/kernel"] = get(f"{dense}/kernel", shape)
    out[f"{key}/bias"] = get(f"{dense}/bias", shape[-1:])
  left = names - used
  if left:
    raise ValueError(f"unused checkpoint tensors: {sorted(left)}")
  if len(tags) != 50:
    raise ValueError(f"expected 50 tags, got {len(tags)}")
  out["tags"] = np.array(list(tags), dtype="<U32")
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--out", default="lmdm_jax/eval/weights")
  p.add_argument("--models", default=",".join(MODELS))
  args = p.parse_args(argv)
  import importlib.metadata as md
  import musicnn
  from musicnn import configuration as mcfg
  pkg = os.path.dirname(musicnn.__file__)
  os.makedirs(args.out, exist_ok=True)
  for model in [m.strip() for m in args.models.split(",") if m.strip()]:
    if model not in MODELS:
      raise SystemExit(f"unsupported model {model!r}; choose from {MODELS}")
    tags = mcfg.MSD_LABELS if model.startswith("MSD") else mcfg.MTT_LABELS
    arrays = convert(os.path.join(pkg, model) + "/", tags)
    path = os.path.join(args.out, model.lower() + ".npz")
    np.savez_compressed(path, **arrays)
    n = sum(a.size for k, a in arrays.items() if k != "tags")
    print(f"{model}: {n} parameters -> {path} "
          f"({os.path.getsize(path) / 1e6:.2f} MB)")
  dist = md.distribution("musicnn")
  lic = next((f for f in dist.files or [] if "LICENSE" in f.name), None)
  if lic is None:
    raise SystemExit("musicnn's licence file not found in its metadata")
  text = lic.read_text()
  header = (f"musicnn {dist.version} (https://github.com/jordipons/musicnn), "
            f"licence: {dist.metadata['License']}.\nThe weights in this "
            "directory were converted from musicnn's checkpoints by "
            "tools/convert_musicnn.py.\n\n")
  with open(os.path.join(args.out, "LICENSE.musicnn"), "w") as f:
    f.write(header + text.strip() + "\n")
  print(f"licence -> {os.path.join(args.out, 'LICENSE.musicnn')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
