"""`lmdm convert ...` and `lmdm bench codec` (registered from lmdm_jax.cli).

  lmdm bench codec --codec mel --audio music.ogg --seconds 30 --json out.json
  lmdm convert sao --checkpoint model.safetensors --model-config cfg.json \
      --out converted/
  lmdm convert oobleck --checkpoint model.safetensors \
      --model-config cfg.json --out vae/
  lmdm convert t5 --hf-dir t5-base/ --out t5/
  lmdm package --dit converted/ --t5-dir t5/ --vae-dir vae/ --out pkg/
"""
from __future__ import annotations

import json
import sys


def _bench_codec(args) -> int:
  from lmdm_jax.bench.codec import load_audio, measure
  from lmdm_jax.bench.stream import device_info
  from lmdm_jax.codecs import get_codec
  kwargs = json.loads(args.codec_args) if args.codec_args else {}
  codec = get_codec(args.codec, **kwargs)
  audio = load_audio(args.audio, codec.sample_rate, codec.channels,
                     args.offset, args.seconds)
  result = measure(codec, audio, repeats=args.repeats)
  result.update({"audio": args.audio, "offset_s": args.offset,
                 "codec_args": kwargs, "device": device_info()})
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)
    print(f"[bench] wrote {args.json}", file=sys.stderr)
  print(json.dumps(result, indent=2))
  return 0


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


def register(sub, bsub) -> None:
  """`lmdm bench codec`, `lmdm convert sao|oobleck|t5`, `lmdm package`."""
  b = bsub.add_parser("codec", help="codec round-trip quality and speed")
  b.add_argument("--codec", default="mel")
  b.add_argument("--codec-args", default=None,
                 help='JSON keyword arguments, e.g. \'{"iters": 16}\'')
  b.add_argument("--audio", required=True, help="any file soundfile reads")
  b.add_argument("--offset", type=float, default=0.0, help="start, seconds")
  b.add_argument("--seconds", type=float, default=30.0,
                 help="length to use (<= 0: to the end)")
  b.add_argument("--repeats", type=int, default=2)
  b.add_argument("--json", default=None)
  b.set_defaults(fn=_bench_codec)
  c = sub.add_parser("convert", help="import PyTorch checkpoints")
  csub = c.add_subparsers(dest="convert_command", required=True)
  s = csub.add_parser(
      "sao", help="stable-audio-tools DiT (+ seconds_total) -> params dir")
  s.add_argument("--checkpoint", required=True,
                 help=".safetensors (or .ckpt/.pt when torch is importable)")
  s.add_argument("--model-config", required=True,
                 help="stable-audio-tools model config JSON")
  s.add_argument("--out", required=True)
  s.set_defaults(fn=_convert_sao)
  o = csub.add_parser(
      "oobleck", help="stable-audio-tools Oobleck VAE -> codec dir "
      "(get_codec('oobleck', directory=OUT))")
  o.add_argument("--checkpoint", required=True,
                 help="SAO checkpoint (pretransform.model.*) or autoencoder")
  o.add_argument("--model-config", required=True)
  o.add_argument("--out", required=True)
  o.set_defaults(fn=_convert_oobleck)
  t = csub.add_parser("t5", help="Hugging Face T5 encoder -> params dir "
                      "(+ spiece.model)")
  t.add_argument("--hf-dir", required=True,
                 help="dir with config.json, model.safetensors, spiece.model")
  t.add_argument("--out", required=True)
  t.set_defaults(fn=_convert_t5)
  from lmdm_jax.convert import assemble
  assemble.register(sub)
