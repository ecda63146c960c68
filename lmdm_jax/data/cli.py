"""`lmdm data build` and `lmdm data demo` (registered in lmdm_jax/cli.py).

  lmdm data build --audio-dir AUDIO [--captions captions.csv] --codec pool \
      --out DATA [--controls loudness,brightness,pitch,cqt_topk] [--stems]
  lmdm data build --audio-dir AUDIO --codec oobleck --codec-dir SAO_PKG \
      --out DATA                    # SAO's VAE, batched (codecs/oobleck.py)
  lmdm data demo --out DEMO [--stems]
"""
from __future__ import annotations

import argparse
import json
import sys

from lmdm_jax.data import demo as demo_lib


def run_build(args) -> int:
  # tensorflow_datasets (the [data] extra) only when a dataset is built.
  from lmdm_jax.data import builders
  kwargs = json.loads(args.codec_kwargs) if args.codec_kwargs else {}
  if args.codec_dir:
    if args.codec != "oobleck":
      raise SystemExit(f"--codec-dir is for --codec oobleck (a model "
                       f"package or a `lmdm convert oobleck` dir), not "
                       f"--codec {args.codec}")
    import os
    kwargs["directory"] = os.path.abspath(args.codec_dir)
  report = builders.build(args.audio_dir, args.out, codec=args.codec,
                          codec_kwargs=kwargs, captions=args.captions,
                          min_frames=args.min_frames,
                          controls=[c for c in args.controls.split(",")
                                    if c],
                          pitch_method=args.pitch_method,
                          stems=args.stems, stems_dir=args.stems_dir,
                          parts_per_file=args.parts_per_file,
                          workers=args.workers)
  print(json.dumps({k: v for k, v in report.items() if k != "skipped"},
                   indent=2))
  if report["skipped"]:
    print(f"skipped {len(report['skipped'])} file(s); see "
          f"{report['report_path']}", file=sys.stderr)
  return 0


def run_demo(args) -> int:
  if not 0.0 <= args.heldout_fraction < 1.0:
    raise SystemExit(f"--heldout-fraction must be in [0, 1), got "
                     f"{args.heldout_fraction}")
  if args.workers < 1:
    raise SystemExit(f"--workers must be >= 1, got {args.workers}")
  report = demo_lib.build_demo(
      args.out, workers=args.workers, seed=args.seed,
      heldout_fraction=args.heldout_fraction, max_seconds=args.max_seconds,
      limit=args.limit, wesnoth=not args.no_wesnoth, stems=args.stems,
      soundfont_dirs=args.soundfont_dir,
      log=lambda *a: print(*a, file=sys.stderr, flush=True))
  print(json.dumps({k: v for k, v in report.items() if k != "failures"},
                   indent=2))
  return 0


def add_build_arguments(b: argparse.ArgumentParser) -> None:
  b.add_argument("--audio-dir", required=True)
  b.add_argument("--captions", default=None,
                 help="CSV/JSON/JSONL of file -> caption (else sidecar .txt)")
  b.add_argument("--codec", required=True)
  b.add_argument("--codec-kwargs", default="",
                 help='JSON, e.g. \'{"latent_channels": 8}\'')
  b.add_argument("--codec-dir", default="",
                 help="--codec oobleck: the VAE of this model package "
                      "(lmdm fetch / lmdm package) or converted VAE dir "
                      "(lmdm convert oobleck)")
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
  b.add_argument("--workers", type=int, default=1,
                 help="encode in this many processes (numpy codecs: "
                      "semitone, mel, pool; the dataset is the same as "
                      "with 1). oobleck batches on one device: 1")


DEMO_DESCRIPTION = (
    "Renders music21 corpus scores through fluidsynth and links Debian's "
    "Wesnoth recordings, with captions from metadata, split by piece (see "
    "lmdm_jax/data/demo.py).")


def add_demo_arguments(dm: argparse.ArgumentParser) -> None:
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
                  help="folder of GM .sf2/.sf3 fonts to draw between "
                       "(repeatable); default: only the recipe's two "
                       "(FluidR3_GM, TimGM6mb) from /usr/share/sounds/sf2, "
                       "so other installed fonts do not change the data")
