"""`lmdm eval` (registered in lmdm_jax/cli.py).

  lmdm eval --generated GEN/ --reference REF/ --json eval.json \
      [--window-seconds 10] [--tags] [--model mtt|msd] \
      [--embedding penultimate|mean_pool|max_pool]
  lmdm eval --generated GEN/             # tag summary only

Prints the top-k musicnn tags of each directory (and the focus tags:
piano, guitar, strings, classical, ...), FD and KL, and the drift windows.
Conventions: docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import json
import sys


def _eval(args) -> int:
  from lmdm_jax.cliutil import require
  for module in ("soundfile", "librosa", "scipy"):
    require(module, "eval", "lmdm eval")
  from lmdm_jax.eval import run
  log = (lambda *a: print(*a, file=sys.stderr, flush=True))
  try:
    result = run.evaluate_dirs(
        args.generated, args.reference, model=args.model,
        embedding=args.embedding, window_seconds=args.window_seconds,
        hop_seconds=args.patch_hop, top_k=args.top_k, per_file=args.tags,
        progress=log if args.verbose else None)
  except ValueError as e:
    raise SystemExit(f"lmdm eval: {e}") from e
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)
    log(f"[eval] wrote {args.json}")
  print(run.format_report(result, top_k=args.top_k))
  return 0


def add_arguments(e: argparse.ArgumentParser) -> None:
  """`lmdm eval`'s arguments (registered in lmdm_jax/cli.py)."""
  e.add_argument("--generated", required=True, help="directory of audio")
  e.add_argument("--reference", default=None,
                 help="directory of reference audio (omit: tags only)")
  e.add_argument("--json", default=None, help="write the results here")
  e.add_argument("--window-seconds", type=float, default=None,
                 help="drift: FD/KL per window of this length over the "
                 "generated files")
  e.add_argument("--tags", action="store_true",
                 help="also list every file's top tags (printed and JSON)")
  e.add_argument("--model", default="mtt",
                 help="musicnn model: mtt (MagnaTagATune: instrument tags, "
                 "default) or msd (Million Song Dataset: genre tags)")
  e.add_argument("--embedding", default="penultimate",
                 choices=["penultimate", "mean_pool", "max_pool"],
                 help="musicnn layer for FD (default penultimate, 200-d)")
  e.add_argument("--patch-hop", type=float, default=None,
                 help="seconds between 2.992 s patches (default 2.992: no "
                 "overlap, as musicnn)")
  e.add_argument("--top-k", type=int, default=5)
  e.add_argument("-v", "--verbose", action="store_true",
                 help="progress per file on stderr")
