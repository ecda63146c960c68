"""`lmdm`: the command-line entry point.

  lmdm bench stream --config configs/sao_small.py --modes outpaint,ed,bc \
      --steps 8 --blocks 3 --json out.json
  lmdm bench bc-history --config configs/tiny.py --blocks 40 --json h.json
  lmdm info --config configs/sao_small.py
"""
from __future__ import annotations

import argparse
import json
import sys

from lmdm_jax.train.cli import register as _register_train
from lmdm_jax.live import generate as generate_cli
from lmdm_jax.live import cli as live_cli
from lmdm_jax.train import export as export_cli
from lmdm_jax.convert import cli as convert_cli
from lmdm_jax.eval import cli as eval_cli


def _bench_stream(args) -> int:
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


def _bench_history(args) -> int:
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


def _info(args) -> int:
  from lmdm_jax.configs import dit_config, geometry, load_config
  from lmdm_jax.model.init import count_params, param_shapes
  cfg = load_config(args.config)
  dit = dit_config(cfg)
  g = geometry(cfg)
  n = count_params(param_shapes(dit, cfg.cond_tokens))
  print(json.dumps({"params": n, "model": dit.__dict__,
                    "geometry": g.__dict__,
                    "window_seconds": g.window / cfg.frame_rate,
                    "block_seconds": g.block / cfg.frame_rate}, indent=2))
  return 0


def _register_core(sub, bsub) -> None:
  """`lmdm bench stream`, `lmdm bench bc-history`, `lmdm info`."""
  s = bsub.add_parser("stream", help="cost per block of each streaming mode")
  s.add_argument("--config", required=True)
  s.add_argument("--modes", default="outpaint,ed,bc")
  s.add_argument("--steps", type=int, default=8)
  s.add_argument("--blocks", type=int, default=5,
                 help="timed blocks per mode (after one warm-up block)")
  s.add_argument("--batch", type=int, default=1)
  s.add_argument("--cfg", action="store_true",
                 help="compute the unconditional CFG branch too")
  s.add_argument("--sampler", default="pingpong",
                 choices=["pingpong", "euler"])
  s.add_argument("--json", default=None, help="write the results here")
  s.set_defaults(fn=_bench_stream)
  h = bsub.add_parser(
      "bc-history", help="BC stream vs its fixed training window, per block")
  h.add_argument("--config", required=True)
  h.add_argument("--blocks", type=int, default=40)
  h.add_argument("--steps", type=int, default=4)
  h.add_argument("--seed", type=int, default=0)
  h.add_argument("--json", default=None)
  h.set_defaults(fn=_bench_history)
  i = sub.add_parser("info", help="parameter count and geometry of a config")
  i.add_argument("--config", required=True)
  i.set_defaults(fn=_info)


def _bench_study(args) -> int:
  from lmdm_jax.bench import study
  from lmdm_jax.configs import load_config
  cfg = load_config(args.config)
  log = (lambda *a: print(*a, file=sys.stderr, flush=True))
  result = study.run(cfg, progress=log)
  study.write(result, args.json, args.report)
  print(study.markdown(result))
  return 0


def _register_study(sub, bsub) -> None:
  """`lmdm bench study`: LMDM modes vs a discrete-AR live model."""
  del sub
  s = bsub.add_parser("study", help="efficiency study sweep (JSON, "
                      "Markdown, PNG)")
  s.add_argument("--config", required=True,
                 help="a configs/bench/*.py sweep description")
  s.add_argument("--json", default=None)
  s.add_argument("--report", default=None,
                 help="directory for study.md and the PNG plots")
  s.set_defaults(fn=_bench_study)


def _bench_peer(args) -> int:
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


def _register_peer(sub, bsub) -> None:
  """`lmdm bench peer`: ours vs stable-audio-tools' PyTorch DiT."""
  del sub
  from lmdm_jax.bench.peer import DEFAULT_PYTHON
  s = bsub.add_parser("peer", help="ours vs stable-audio-tools (PyTorch) at "
                      "equal work and equal task, in one run")
  s.add_argument("--config", required=True)
  s.add_argument("--steps", type=int, default=8)
  s.add_argument("--batch", type=int, default=1)
  s.add_argument("--repeats", type=int, default=3)
  s.add_argument("--python", default=DEFAULT_PYTHON,
                 help="interpreter with torch + stable-audio-tools "
                      "(default: .ci/refenv/bin/python or $LMDM_REFENV_PYTHON)")
  s.add_argument("--json", default=None)
  s.set_defaults(fn=_bench_peer)


# Each entry registers its subcommands: fn(subparsers, bench_subparsers).
# Feature modules add one line here and keep their commands to themselves.
REGISTRARS = [
    _register_core,
    _register_study,
    _register_peer,
    _register_train,
    convert_cli.register,
    generate_cli.register,
    live_cli.register,
    export_cli.register,
    eval_cli.register,
]


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="lmdm", description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  sub = p.add_subparsers(dest="command", required=True)
  bench = sub.add_parser("bench", help="benchmarks that write JSON")
  bsub = bench.add_subparsers(dest="bench_command", required=True)
  for register in REGISTRARS:
    register(sub, bsub)
  return p


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  return args.fn(args)


if __name__ == "__main__":
  sys.exit(main())
