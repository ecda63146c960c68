"""`lmdm convert ...` (registered in lmdm_jax/cli.py).

  lmdm convert sao --checkpoint model.safetensors --model-config cfg.json \
      --out converted/
  lmdm convert oobleck --checkpoint model.safetensors \
      --model-config cfg.json --out vae/
  lmdm convert t5 --hf-dir t5-base/ --out t5/
  lmdm package --dit converted/ --t5-dir t5/ --vae-dir vae/ --out pkg/
"""
from __future__ import annotations

import argparse
import json


def _convert_sao(args) -> int:
  from lmdm_jax.convert.sao import convert_sao
  out = convert_sao(args.checkpoint, args.model_config, args.out)
  print(json.dumps(out, indent=2))
  return 0


def _convert_oobleck(args) -> int:
  from lmdm_jax.convert.oobleck import convert_oobleck
  out = convert_oobleck(args.checkpoint, args.model_config, args.out)
  print(json.dumps(out, indent=2))
  return 0


def _convert_t5(args) -> int:
  from lmdm_jax.convert.t5 import convert_t5
  print(json.dumps(convert_t5(args.hf_dir, args.out), indent=2))
  return 0


def add_sao_arguments(s: argparse.ArgumentParser) -> None:
  s.add_argument("--checkpoint", required=True,
                 help=".safetensors (or .ckpt/.pt when torch is importable)")
  s.add_argument("--model-config", required=True,
                 help="stable-audio-tools model config JSON")
  s.add_argument("--out", required=True)


def add_oobleck_arguments(o: argparse.ArgumentParser) -> None:
  o.add_argument("--checkpoint", required=True,
                 help="SAO checkpoint (pretransform.model.*) or autoencoder")
  o.add_argument("--model-config", required=True)
  o.add_argument("--out", required=True)


def add_t5_arguments(t: argparse.ArgumentParser) -> None:
  t.add_argument("--hf-dir", required=True,
                 help="dir with config.json, model.safetensors, spiece.model")
  t.add_argument("--out", required=True)
