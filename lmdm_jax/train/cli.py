"""`lmdm train`, `lmdm data build` and `lmdm bench train`.

  lmdm data build --audio-dir AUDIO [--captions captions.csv] --codec pool \
      --out DATA
  lmdm train --config configs/finetune_bc.py --workdir W \
      --config.data.dir=DATA --config.train.batch_size=64
  lmdm bench train --config configs/finetune_bc.py:tiny --steps 10 \
      --json bench.json

`--config.a.b=value` overrides any config field (value parsed as the type
of the field it replaces).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

_PREFIX = "--config."


class _OverrideParser(argparse.ArgumentParser):
  """Collects `--config.a.b=v` arguments into `namespace.overrides`."""

  def parse_known_args(self, args=None, namespace=None):
    args = list(sys.argv[1:] if args is None else args)
    overrides = [a for a in args if a.startswith(_PREFIX)]
    rest = [a for a in args if not a.startswith(_PREFIX)]
    ns, extra = super().parse_known_args(rest, namespace)
    ns.overrides = list(getattr(ns, "overrides", None) or []) + overrides
    return ns, extra


def _parse_value(old, text: str):
  if isinstance(old, bool):
    if text.lower() in ("1", "true", "yes"):
      return True
    if text.lower() in ("0", "false", "no"):
      return False
    raise ValueError(f"expected a boolean, got {text!r}")
  if isinstance(old, int):
    return int(text)
  if isinstance(old, float):
    return float(text)
  return text


def apply_overrides(cfg, overrides):
  """Applies ["--config.a.b=v", ...] to a ConfigDict in place."""
  for item in overrides:
    key, sep, text = item[len(_PREFIX):].partition("=")
    if not sep:
      raise ValueError(f"override {item!r} must look like "
                       f"--config.a.b=value")
    *path, leaf = key.split(".")
    node = cfg
    for p in path:
      if p not in node:
        raise ValueError(f"unknown config field {key!r}")
      node = node[p]
    if leaf not in node:
      raise ValueError(f"unknown config field {key!r}")
    node[leaf] = _parse_value(node[leaf], text)
  return cfg


def params_digest(params) -> str:
  """sha1 of this process's copy of (replicated) params: equal digests
  across processes mean bit-identical replicas."""
  import hashlib
  import jax
  import numpy as np
  h = hashlib.sha1()
  for x in jax.tree.leaves(params):
    h.update(np.ascontiguousarray(x.addressable_data(0)).tobytes())
  return h.hexdigest()


def _init_distributed(args):
  import jax
  if args.coordinator:
    jax.distributed.initialize(args.coordinator, args.num_processes,
                               args.process_id)
  elif args.distributed:
    jax.distributed.initialize()     # TPU pods / SLURM: auto-detected


def _train(args) -> int:
  import jax
  _init_distributed(args)
  from lmdm_jax.configs import load_config
  from lmdm_jax.train import objective
  cfg = apply_overrides(load_config(args.config), args.overrides)
  log = (lambda *a: print(*a, file=sys.stderr, flush=True))
  log(f"[train] {jax.process_count()} process(es), {jax.device_count()} "
      f"devices ({jax.devices()[0].platform}); workdir {args.workdir}")
  hang = None
  if args.hang_after_step is not None:
    def hang(step):
      if step == args.hang_after_step:
        log(f"[train] HANG after step {step}")
        while True:            # the kill test SIGKILLs us here
          time.sleep(1)
  state = objective.train(cfg, args.workdir, log=log,
                          progress=not args.no_progress,
                          stop_after=args.stop_after, after_step=hang)
  params, _ = objective.exported_params(cfg, state)
  log(f"[train] finished at step {int(state.step)}; params sha1 "
      f"{params_digest(params)}")
  return 0


def _data_build(args) -> int:
  from lmdm_jax.data import builders
  kwargs = json.loads(args.codec_kwargs) if args.codec_kwargs else {}
  report = builders.build(args.audio_dir, args.out, codec=args.codec,
                          codec_kwargs=kwargs, captions=args.captions,
                          min_frames=args.min_frames,
                          controls=[c for c in args.controls.split(",")
                                    if c],
                          pitch_method=args.pitch_method,
                          stems=args.stems, stems_dir=args.stems_dir,
                          parts_per_file=args.parts_per_file)
  print(json.dumps({k: v for k, v in report.items() if k != "skipped"},
                   indent=2))
  if report["skipped"]:
    print(f"skipped {len(report['skipped'])} file(s); see "
          f"{report['report_path']}", file=sys.stderr)
  return 0


def _data_demo(args) -> int:
  from lmdm_jax.data import demo, midi_render
  if not 0.0 <= args.heldout_fraction < 1.0:
    raise SystemExit(f"--heldout-fraction must be in [0, 1), got "
                     f"{args.heldout_fraction}")
  if args.workers < 1:
    raise SystemExit(f"--workers must be >= 1, got {args.workers}")
  report = demo.build_demo(
      args.out, workers=args.workers, seed=args.seed,
      heldout_fraction=args.heldout_fraction, max_seconds=args.max_seconds,
      limit=args.limit, wesnoth=not args.no_wesnoth, stems=args.stems,
      soundfont_dirs=args.soundfont_dir or midi_render.SOUNDFONT_DIRS,
      log=lambda *a: print(*a, file=sys.stderr, flush=True))
  print(json.dumps({k: v for k, v in report.items() if k != "failures"},
                   indent=2))
  return 0


def _bench_train(args) -> int:
  from lmdm_jax.configs import load_config
  from lmdm_jax.bench import train as bench
  cfg = apply_overrides(load_config(args.config), args.overrides)
  result = bench.run(cfg, args.config, args.steps, args.devices,
                     args.batch_size)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))
  return 0


def register(sub, bsub) -> None:
  """Adds `train`, `data build` and `bench train`."""
  t = sub.add_parser("train", help="fine-tune (resumes from workdir)",
                     description=__doc__,
                     formatter_class=argparse.RawTextHelpFormatter)
  t.__class__ = _OverrideParser
  t.add_argument("--config", required=True,
                 help="configs/finetune_bc.py[:tiny]")
  t.add_argument("--workdir", required=True)
  t.add_argument("--no-progress", action="store_true")
  t.add_argument("--stop-after", type=int, default=None,
                 help="leave after this many steps of this invocation")
  t.add_argument("--coordinator", default="",
                 help="host:port of process 0 (multi-process runs)")
  t.add_argument("--num-processes", type=int, default=None)
  t.add_argument("--process-id", type=int, default=None)
  t.add_argument("--distributed", action="store_true",
                 help="jax.distributed.initialize() with auto-detection")
  t.add_argument("--hang-after-step", type=int, default=None,
                 help=argparse.SUPPRESS)   # tests: block here to be killed
  t.set_defaults(fn=_train, overrides=[])

  d = sub.add_parser("data", help="datasets of codec latents")
  dsub = d.add_subparsers(dest="data_command", required=True)
  b = dsub.add_parser("build", help="encode a folder of audio to TFDS")
  b.add_argument("--audio-dir", required=True)
  b.add_argument("--captions", default=None,
                 help="CSV/JSON/JSONL of file -> caption (else sidecar .txt)")
  b.add_argument("--codec", required=True)
  b.add_argument("--codec-kwargs", default="",
                 help='JSON, e.g. \'{"latent_channels": 8}\'')
  b.add_argument("--out", required=True, help="TFDS data_dir to write")
  b.add_argument("--min-frames", type=int, default=256,
                 help="skip files shorter than this many latent frames")
  b.add_argument("--controls", default="",
                 help="also store sketch controls computed from the audio, "
                      "e.g. loudness,brightness,pitch,cqt_topk "
                      "(lmdm_jax/data/controls.py)")
  b.add_argument("--pitch-method", default="pyin", choices=("pyin", "yin"),
                 help="pitch tracker for the pitch control (yin is ~25x "
                      "faster; pyin tracks voicing better)")
  b.add_argument("--stems", action="store_true",
                 help="also write one accompaniment record per part of "
                      "every file with stems (`lmdm data demo --stems` "
                      "layout): latents = the other parts, control_partner "
                      "= the part (jamming data)")
  b.add_argument("--stems-dir", default=None,
                 help="stems of AUDIO/x/y.flac are in STEMS_DIR/x/y/*.flac "
                      "(implies --stems)")
  b.add_argument("--parts-per-file", type=int, default=None,
                 help="at most this many accompaniment records per file "
                      "(default: one per part)")
  b.set_defaults(fn=_data_build)
  dm = dsub.add_parser(
      "demo", help="render the offline demo dataset (music21 + fluidsynth)",
      description=("Renders music21 corpus scores through fluidsynth and "
                   "links Debian's Wesnoth recordings, with captions from "
                   "metadata, split by piece (see lmdm_jax/data/demo.py)."))
  dm.add_argument("--out", required=True)
  dm.add_argument("--workers", type=int, default=2)
  dm.add_argument("--seed", type=int, default=0)
  dm.add_argument("--heldout-fraction", type=float, default=0.05)
  dm.add_argument("--max-seconds", type=float, default=240.0,
                  help="cut renderings after this many seconds")
  dm.add_argument("--limit", type=int, default=None,
                  help="render only the first N planned pieces (smoke)")
  dm.add_argument("--no-wesnoth", action="store_true")
  dm.add_argument("--stems", action="store_true",
                  help="also render each part alone into OUT/stems/ (the "
                       "mix is their sum): accompaniment training data")
  dm.add_argument("--soundfont-dir", action="append", default=None,
                  help="folder of GM .sf2/.sf3 fonts (repeatable; default "
                       "/usr/share/sounds/sf2)")
  dm.set_defaults(fn=_data_demo)

  bt = bsub.add_parser("train", help="training step time and throughput")
  bt.__class__ = _OverrideParser
  bt.add_argument("--config", required=True)
  bt.add_argument("--steps", type=int, default=10)
  bt.add_argument("--devices", type=int, default=1)
  bt.add_argument("--batch-size", type=int, default=None)
  bt.add_argument("--json", default=None)
  bt.set_defaults(fn=_bench_train, overrides=[])
