"""Converted parts -> one model package (`lmdm package`, `lmdm fetch`).

  lmdm package --dit sao_small/ --t5-dir t5/ --vae-dir vae/ --out pkg/

Takes the three directories the converters write (`lmdm convert sao`,
`lmdm convert t5`, `lmdm convert oobleck`) and writes one package
(lmdm_jax/package.py): the DiT with its number conditioners, the T5
encoder with its sentencepiece model, the Oobleck VAE, SAO's conditioning
ids, the stream geometry and generation defaults. Widths are checked before
anything is written (T5 width vs the DiT's cond_token_dim, the VAE's latent
size vs its io_channels, the conditioners' widths vs cond_token_dim and
global_cond_dim); a mismatch is one line naming the part and its directory.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, Mapping, Optional

from lmdm_jax import package
from lmdm_jax.conditioners.prompt import stream_seconds_total

# The LMDM paper's block-causal geometry for SAO Small (saos_block_causal:
# 192 context latents, 48-latent chunks, a window of 4 chunks).
SAO_GEOMETRY = {"mode": "bc", "context": 192, "block": 48, "window_chunks": 4}
# SAO Small's model card: ping-pong, 8 steps, no CFG (ARC post-trained).
SAO_DEFAULTS = {"steps": 8, "cfg_scale": 1.0, "sampler": "pingpong"}


def _need(path: str, what: str, where: str) -> None:
  if not os.path.isdir(path):
    raise package.PackageError(where, what, f"directory {path} does not exist")
  if not os.path.isfile(os.path.join(path, "config.json")) or not \
      os.path.isfile(os.path.join(path, "params.npz")):
    raise package.PackageError(
        where, f"{what} ({path})", "needs config.json and params.npz (the "
        "output of `lmdm convert`)")


def _text_spec(source: Mapping[str, Any]):
  """(text id, max_length) of the T5 conditioner in a SAO model config."""
  m = source.get("model", source)
  for s in (m.get("conditioning") or {}).get("configs", []):
    if s.get("type") == "t5":
      # stable-audio-tools' T5Conditioner default max_length is 128.
      return s["id"], int(s.get("config", {}).get("max_length", 128))
  return None, None


def assemble(dit_dir: str, t5_dir: str, vae_dir: str, out: str,
             geometry: Optional[Mapping[str, Any]] = None,
             defaults: Optional[Mapping[str, Any]] = None,
             meta: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """Writes the package `out` from converted parts -> a summary dict."""
  for d, what in ((dit_dir, "DiT"), (t5_dir, "text encoder (t5)"),
                  (vae_dir, "codec (oobleck VAE)")):
    _need(d, what, out)
  spm = os.path.join(t5_dir, "spiece.model")
  if not os.path.isfile(spm):
    raise package.PackageError(out, f"text encoder (t5) ({t5_dir})",
                               "spiece.model is missing (copy the "
                               "checkpoint's sentencepiece model there)")
  with open(os.path.join(dit_dir, "config.json")) as f:
    dit_doc = json.load(f)
  with open(os.path.join(t5_dir, "config.json")) as f:
    t5_cfg = json.load(f)["t5"]
  with open(os.path.join(vae_dir, "config.json")) as f:
    vae_cfg = json.load(f)["oobleck"]
  source = dit_doc.get("source", {})
  text_id, max_length = _text_spec(source)
  if text_id is None:
    raise package.PackageError(out, f"DiT ({dit_dir})", "its model config "
                               "has no t5 conditioner")
  sample_rate = int(dit_doc.get("sample_rate") or 44100)
  hop = 1
  for s in vae_cfg["strides"]:
    hop *= int(s)
  geometry = dict(geometry or SAO_GEOMETRY)
  window = int(geometry["context"]) + int(geometry["block"])
  seconds = stream_seconds_total(dit_doc.get("sample_size"), sample_rate,
                                 window, hop)
  conditioners = [dict(s) for s in dit_doc["conditioners"]]
  cross_ids, global_ids = dit_doc["cross_ids"], dit_doc["global_ids"]
  # seconds_start (SAO 1.0): every window of a stream starts at 0. Other
  # number conditioners have no stream input: `validate` names them.
  known = {"seconds_total": seconds, "seconds_start": 0.0}
  stream_inputs = {s["id"]: known[s["id"]] for s in conditioners
                   if s["id"] in known}
  cond_tokens = sum(max_length if i == text_id else 1 for i in cross_ids)
  doc = {
      "dit": dit_doc["dit"], "geometry": geometry,
      "cond_tokens": cond_tokens, "frame_rate": sample_rate / hop,
      "text": {"encoder": "t5", "id": text_id, "max_length": max_length,
               "config": t5_cfg},
      "codec": {"name": "oobleck", "config": vae_cfg,
                "sample_rate": sample_rate},
      "conditioning": {"conditioners": conditioners, "cross_ids": cross_ids,
                       "global_ids": global_ids,
                       "stream_inputs": stream_inputs},
      "defaults": dict(defaults or SAO_DEFAULTS),
      "meta": dict(meta or {}, source_model_config=source,
                   parts={"dit": os.path.abspath(dit_dir),
                          "t5": os.path.abspath(t5_dir),
                          "vae": os.path.abspath(vae_dir)}),
  }
  sources = {"text": t5_dir, "codec": vae_dir, "dit": dit_dir}
  # Check widths before reading any array.
  package.validate(package.upgrade(dict(doc, format=package.FORMAT)), out,
                   sources)
  import numpy as np

  def flat(path):
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  dit_flat = flat(os.path.join(dit_dir, "params.npz"))
  dit = dict(doc["dit"])
  if not dit.get("input_add_dim"):
    # The streaming stack feeds clean context through LMDM's input-add
    # layer; a base SAO DiT has none. Added as zeros it changes nothing:
    # the package plays as SAO itself does, each block from the prompt
    # alone (the context reaches the model only once fine-tuned, stage 1).
    dit["input_add_dim"] = 1 + int(dit["io_channels"])
    dit_flat["dit/to_input_add_embed/kernel"] = np.zeros(
        (dit["input_add_dim"], int(dit["embed_dim"])), np.float32)
    doc["dit"] = dit
    doc["meta"]["input_add_added"] = True     # zeros, for playing only
  arrays = {package.DIT_PARAMS: {k: v for k, v in dit_flat.items()
                                 if k.startswith("dit/")},
            package.TEXT_PARAMS: flat(os.path.join(t5_dir, "params.npz")),
            package.CODEC_PARAMS: flat(os.path.join(vae_dir, "params.npz"))}
  conds = {k[len("conditioners/"):]: v for k, v in dit_flat.items()
           if k.startswith("conditioners/")}
  if conditioners:
    arrays[package.COND_PARAMS] = conds
  package.write(out, doc, arrays, {package.TEXT_TOKENIZER: spm}, sources)
  n = int(sum(a.size for f in arrays.values() for a in f.values()))
  return {"out": out, "params": n, "cond_tokens": cond_tokens,
          "stream_inputs": stream_inputs, "geometry": geometry,
          "frame_rate": sample_rate / hop}


def _cli(args) -> int:
  import sys
  from lmdm_jax.convert.state_dict import ConversionError
  geometry = dict(SAO_GEOMETRY)
  for k in ("context", "block", "window_chunks"):
    if getattr(args, k) is not None:
      geometry[k] = int(getattr(args, k))
  try:
    out = assemble(args.dit, args.t5_dir, args.vae_dir, args.out,
                   geometry=geometry)
  except (package.PackageError, ConversionError, FileNotFoundError) as e:
    print(f"lmdm package: error: {e}", file=sys.stderr)
    return 2
  print(json.dumps(out, indent=2))
  return 0


def add_arguments(p) -> None:
  """`lmdm package`'s arguments."""
  p.add_argument("--dit", required=True, help="`lmdm convert sao` output")
  p.add_argument("--t5-dir", required=True,
                 help="`lmdm convert t5` output (with spiece.model)")
  p.add_argument("--vae-dir", required=True,
                 help="`lmdm convert oobleck` output")
  p.add_argument("--out", required=True)
  p.add_argument("--context", type=int, default=None,
                 help=f"context frames (default {SAO_GEOMETRY['context']})")
  p.add_argument("--block", type=int, default=None,
                 help=f"block frames (default {SAO_GEOMETRY['block']})")
  p.add_argument("--window-chunks", type=int, default=None,
                 help=f"BC window in blocks (default "
                      f"{SAO_GEOMETRY['window_chunks']})")

