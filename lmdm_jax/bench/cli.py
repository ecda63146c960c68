"""`lmdm bench ...`: benchmarks that write JSON (registered in
lmdm_jax/cli.py). Results go to benchmarks/results/ (README, docs).

  lmdm bench stream --config configs/sao_small.py --modes outpaint,ed,bc \
      --steps 8 --blocks 3 --json out.json
  lmdm bench bc-history --config configs/tiny.py --blocks 40 --json h.json
  lmdm bench study --config configs/bench/study_tiny.py --json s.json
  lmdm bench peer --config configs/sao_small.py --json peer.json
  lmdm bench codec --codec mel --audio music.ogg --seconds 30 --json c.json
  lmdm bench train --config configs/finetune.py:bc,tiny --steps 10 \
      --json bench.json

The benchmark modules import JAX, matplotlib or a codec's weights when a
command runs, not when `lmdm` starts.
"""
from __future__ import annotations

import argparse
import json
import sys


def run_stream(args) -> int:
  from lmdm_jax.bench import stream as bench
  from lmdm_jax.configs import load_config
  from lmdm_jax.model.config import MODES
  modes = [m.strip() for m in args.modes.split(",") if m.strip()]
  bad = [m for m in modes if m not in MODES]
  if bad:
    raise SystemExit(f"unknown modes {bad}; choose from {list(MODES)}")
  cfg = load_config(args.config)
  log = (lambda *a: print(*a, file=sys.stderr, flush=True))
  result = bench.run(args.config, cfg, modes, args.steps, args.blocks,
                     batch=args.batch, cfg_branch=args.cfg,
                     sampler=args.sampler, progress=log)
  if args.json:
    bench.write_json(result, args.json)
    log(f"[bench] wrote {args.json}")
  print(bench.markdown_table(result))
  if "ratios_vs_outpaint" in result:
    for m, r in result["ratios_vs_outpaint"].items():
      print(f"outpaint/{m}: FLOPs x{r['flops']:.2f}, time x{r['time']:.2f}")
  print(f"device: {result['device']}, jax {result['jax']}")
  return 0


def run_bc_history(args) -> int:
  import jax
  from lmdm_jax.bench import history
  from lmdm_jax.bench.stream import device_info
  from lmdm_jax.configs import dit_config, geometry, load_config
  from lmdm_jax.model.init import init_params, randomize
  from lmdm_jax.streaming.state import StreamSpec
  cfg = load_config(args.config)
  dit = dit_config(cfg)
  params = randomize(init_params(dit, jax.random.PRNGKey(args.seed),
                                 cfg.cond_tokens),
                     jax.random.PRNGKey(args.seed + 1))
  spec = StreamSpec(dit, geometry(cfg, "bc"), batch=1,
                    cond_tokens=cfg.cond_tokens, steps=args.steps)
  result = history.measure(params, spec, args.blocks, args.seed)
  result.update({"config": args.config, "steps": args.steps,
                 "weights": "random (every parameter)",
                 "device": device_info(), "jax": jax.__version__})
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)
  print(json.dumps({k: v for k, v in result.items()
                    if k != "per_block_rel_l2"}, indent=2))
  return 0


def run_study(args) -> int:
  from lmdm_jax.bench import study
  from lmdm_jax.configs import load_config
  cfg = load_config(args.config)
  log = (lambda *a: print(*a, file=sys.stderr, flush=True))
  result = study.run(cfg, progress=log)
  study.write(result, args.json, args.report)
  print(study.markdown(result))
  return 0


def run_peer(args) -> int:
  from lmdm_jax.bench import peer
  from lmdm_jax.configs import load_config
  cfg = load_config(args.config)
  log = (lambda *a: print(*a, file=sys.stderr, flush=True))
  result = peer.run(args.config, cfg, args.steps, args.batch, args.repeats,
                    args.python, progress=log)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)
    log(f"[peer] wrote {args.json}")
  print(peer.markdown(result))
  return 0


def run_codec(args) -> int:
  from lmdm_jax.bench.codec import load_audio, measure
  from lmdm_jax.bench.stream import device_info
  from lmdm_jax.codecs import get_codec
  if args.compare:
    return run_codec_compare(args)
  if args.variant:
    raise SystemExit("bench codec: --variant goes with --compare (e.g. "
                     "--compare semitone --variant ...)")
  if not args.audio:
    raise SystemExit("bench codec: give --audio FILE (one codec) or "
                     "--compare NAMES with --heldout/--recorded DIRs")
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


def run_train(args) -> int:
  from lmdm_jax.configs import load_config
  from lmdm_jax.train.cli import apply_overrides
  from lmdm_jax.bench import train as bench
  cfg = apply_overrides(load_config(args.config), args.overrides)
  result = bench.run(cfg, args.config, args.steps, args.devices,
                     args.batch_size)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))
  return 0


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
  p.add_argument("--config", required=True)
  p.add_argument("--modes", default="outpaint,ed,bc")
  p.add_argument("--steps", type=int, default=8)
  p.add_argument("--blocks", type=int, default=5,
                 help="timed blocks per mode (after one warm-up block)")
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--cfg", action="store_true",
                 help="compute the unconditional CFG branch too")
  p.add_argument("--sampler", default="pingpong",
                 choices=["pingpong", "euler"])
  p.add_argument("--json", default=None, help="write the results here")


def add_bc_history_arguments(p: argparse.ArgumentParser) -> None:
  p.add_argument("--config", required=True)
  p.add_argument("--blocks", type=int, default=40)
  p.add_argument("--steps", type=int, default=4)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--json", default=None)


def add_study_arguments(p: argparse.ArgumentParser) -> None:
  p.add_argument("--config", required=True,
                 help="a configs/bench/*.py sweep description")
  p.add_argument("--json", default=None)
  p.add_argument("--report", default=None,
                 help="directory for study.md and the PNG plots")


def add_peer_arguments(p: argparse.ArgumentParser) -> None:
  from lmdm_jax.bench.peer import DEFAULT_PYTHON
  p.add_argument("--config", required=True)
  p.add_argument("--steps", type=int, default=8)
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--python", default=DEFAULT_PYTHON,
                 help="interpreter with torch + stable-audio-tools "
                      "(default: .ci/refenv/bin/python or $LMDM_REFENV_PYTHON)")
  p.add_argument("--json", default=None)


def parse_variant(text: str):
  """'LABEL=CODEC:JSON' -> (label, codec name, kwargs dict)."""
  label, sep, rest = text.partition("=")
  name, sep2, js = rest.partition(":")
  if not (sep and sep2 and label.strip() and name.strip()):
    raise SystemExit(f"bench codec: --variant must be LABEL=CODEC:JSON, got "
                     f"{text!r}")
  try:
    kwargs = json.loads(js)
  except json.JSONDecodeError as e:
    raise SystemExit(f"bench codec: --variant {label.strip()!r}: bad JSON "
                     f"({e})") from None
  if not isinstance(kwargs, dict):
    raise SystemExit(f"bench codec: --variant {label.strip()!r}: the JSON "
                     f"must be an object of keyword arguments")
  return label.strip(), name.strip(), kwargs


def run_codec_compare(args) -> int:
  """Every --compare codec on the same clips of --heldout / --recorded."""
  import os
  from lmdm_jax.bench import codec as bench
  from lmdm_jax.bench.stream import device_info
  from lmdm_jax.codecs import get_codec
  names = [n.strip() for n in args.compare.split(",") if n.strip()]
  codecs = {n: get_codec(n) for n in names}
  variants = {}
  for v in args.variant:
    label, name, kwargs = parse_variant(v)
    if label in codecs:
      raise SystemExit(f"bench codec: --variant label {label!r} is taken")
    codecs[label] = get_codec(name, **kwargs)
    variants[label] = {"codec": name, "kwargs": kwargs}
  names += list(variants)
  sets = {k: v for k, v in (("heldout", args.heldout),
                            ("recorded", args.recorded)) if v}
  if not sets:
    raise SystemExit("bench codec --compare: give --heldout and/or "
                     "--recorded audio folders")
  log = (lambda *a: print(*a, file=sys.stderr, flush=True))
  some = next(iter(codecs.values()))
  clip_sets = {}
  for k, d in sets.items():
    files = bench.list_audio_files(d)
    if not files:
      raise SystemExit(f"bench codec: no audio files under {d}")
    clip_sets[k] = bench.crops(files, args.clips, args.clip_seconds,
                               some.sample_rate)
    log(f"[codec] {k}: {len(clip_sets[k])} clips of {args.clip_seconds} s "
        f"from {len(files)} files")
  stem_clips = None
  if args.stems:
    from lmdm_jax.bench.jam_eval import clips as jam_clips
    audio_dir = args.stems_audio or args.stems.replace(
        os.sep + "stems" + os.sep, os.sep + "audio" + os.sep)
    stem_clips = [(n, p, a) for n, _, p, a in jam_clips(
        [audio_dir], [args.stems], args.clips, args.clip_seconds, some)]
  result = bench.compare(codecs, clip_sets, stem_clips,
                         pitch_method=args.pitch_method, fd=not args.no_fd,
                         progress=log)
  result.update({"codecs": names, "variants": variants,
                 "clip_seconds": args.clip_seconds,
                 "dirs": sets, "stems": args.stems,
                 "device": device_info()})
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)
    log(f"[bench] wrote {args.json}")
  print(bench.compare_table(result))
  return 0


def add_codec_arguments(p: argparse.ArgumentParser) -> None:
  p.add_argument("--codec", default="mel")
  p.add_argument("--codec-args", default=None,
                 help='JSON keyword arguments, e.g. \'{"iters": 16}\'')
  p.add_argument("--audio", default=None, help="any file soundfile reads")
  p.add_argument("--compare", default=None,
                 help="comma-separated codecs to compare on the same clips "
                      "(issue 19), e.g. mel,semitone")
  p.add_argument("--variant", action="append", default=[],
                 metavar="LABEL=CODEC:JSON",
                 help="--compare: also a codec with keyword arguments under "
                      "its own label, e.g. 'A1=semitone:{\"midi_lo\": 33, "
                      "\"semitones\": 55, \"high_bands\": 4}' (repeatable)")
  p.add_argument("--heldout", default=None,
                 help="--compare: folder of held-out audio (demo split)")
  p.add_argument("--recorded", default=None,
                 help="--compare: folder of recorded music")
  p.add_argument("--stems", default=None,
                 help="--compare: stems folder of held-out chorales "
                      "(lmdm data demo --stems) for the partner measures")
  p.add_argument("--stems-audio", default=None,
                 help="their mixes (default: --stems with stems/ -> audio/)")
  p.add_argument("--clips", type=int, default=32)
  p.add_argument("--clip-seconds", type=float, default=8.0)
  p.add_argument("--pitch-method", default="yin", choices=("yin", "pyin"))
  p.add_argument("--no-fd", action="store_true",
                 help="--compare: skip musicnn FD")
  p.add_argument("--offset", type=float, default=0.0, help="start, seconds")
  p.add_argument("--seconds", type=float, default=30.0,
                 help="length to use (<= 0: to the end)")
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--json", default=None)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
  p.add_argument("--config", required=True)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--devices", type=int, default=1)
  p.add_argument("--batch-size", type=int, default=None)
  p.add_argument("--json", default=None)
