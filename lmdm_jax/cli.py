"""`lmdm`: the command-line entry point, and the one registry of its
commands (every subcommand is in `COMMANDS` below; each module gives the
arguments and the function that runs it).

  lmdm generate --prompt "slow Bach chorale for string ensemble" --seconds 30
  lmdm live --prompt "..." [--simulate]
  lmdm train --config configs/finetune.py:bc --workdir W
  lmdm bench stream --config configs/sao_small.py --modes outpaint,ed,bc
  lmdm info --config configs/sao_small.py
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Callable, Optional

from lmdm_jax import fetch as fetch_cli
from lmdm_jax.bench import cli as bench_cli
from lmdm_jax.convert import assemble
from lmdm_jax.convert import cli as convert_cli
from lmdm_jax.data import cli as data_cli
from lmdm_jax.eval import cli as eval_cli
from lmdm_jax.live import cli as live_cli
from lmdm_jax.live import generate as generate_cli
from lmdm_jax.serve import cli as serve_cli
from lmdm_jax.train import cli as train_cli
from lmdm_jax.train import export as export_cli


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


def _add_info_arguments(p: argparse.ArgumentParser) -> None:
  p.add_argument("--config", required=True)


@dataclasses.dataclass(frozen=True)
class Command:
  """words: the command after `lmdm` ("generate", "data build");
  add_arguments(parser); run(args) -> exit code; overrides: the command
  also takes `--config.a.b=value` (collected into args.overrides);
  description: the --help text (default: help)."""
  words: str
  add_arguments: Callable[[argparse.ArgumentParser], None]
  run: Callable[[argparse.Namespace], int]
  help: str
  description: Optional[str] = None
  overrides: bool = False


# Command groups (`lmdm bench ...`): their help lines.
GROUPS = {
    "bench": "benchmarks that write JSON",
    "data": "datasets of codec latents",
    "convert": "import PyTorch checkpoints",
}

COMMANDS = (
    Command("generate", generate_cli.add_arguments, generate_cli._cli,
            "text prompt -> streamed music (WAV)", generate_cli.__doc__),
    Command("live", live_cli.add_arguments, live_cli._cli,
            "play a model live, steered from the terminal",
            live_cli.__doc__),
    Command("serve", serve_cli.add_arguments, serve_cli._cli,
            "play a model in the browser (MIDI, OSC)", serve_cli.__doc__),
    Command("fetch", fetch_cli.add_arguments, fetch_cli._cli,
            "download published weights -> one model package",
            fetch_cli.__doc__),
    Command("package", assemble.add_arguments, assemble._cli,
            "converted DiT + T5 + Oobleck -> one model package",
            assemble.__doc__),
    Command("train", train_cli.add_arguments, train_cli._train,
            "fine-tune (resumes from workdir)", train_cli.__doc__,
            overrides=True),
    Command("export", export_cli.add_arguments, export_cli._cli,
            "checkpoint -> model package", export_cli.__doc__,
            overrides=True),
    Command("eval", eval_cli.add_arguments, eval_cli._eval,
            "musicnn FD / KL / drift of generated vs reference audio",
            eval_cli.__doc__),
    Command("info", _add_info_arguments, _info,
            "parameter count and geometry of a config"),
    Command("data build", data_cli.add_build_arguments, data_cli.run_build,
            "encode a folder of audio to TFDS", data_cli.__doc__),
    Command("data demo", data_cli.add_demo_arguments, data_cli.run_demo,
            "render the offline demo dataset (music21 + fluidsynth)",
            data_cli.DEMO_DESCRIPTION),
    Command("convert sao", convert_cli.add_sao_arguments,
            convert_cli._convert_sao,
            "stable-audio-tools DiT (+ seconds_total) -> params dir"),
    Command("convert oobleck", convert_cli.add_oobleck_arguments,
            convert_cli._convert_oobleck,
            "stable-audio-tools Oobleck VAE -> codec dir "
            "(get_codec('oobleck', directory=OUT))"),
    Command("convert t5", convert_cli.add_t5_arguments,
            convert_cli._convert_t5,
            "Hugging Face T5 encoder -> params dir (+ spiece.model)"),
    Command("bench stream", bench_cli.add_stream_arguments,
            bench_cli.run_stream, "cost per block of each streaming mode"),
    Command("bench bc-history", bench_cli.add_bc_history_arguments,
            bench_cli.run_bc_history,
            "BC stream vs its fixed training window, per block"),
    Command("bench study", bench_cli.add_study_arguments,
            bench_cli.run_study,
            "efficiency study sweep (JSON, Markdown, PNG)"),
    Command("bench peer", bench_cli.add_peer_arguments, bench_cli.run_peer,
            "ours vs stable-audio-tools (PyTorch) at equal work and equal "
            "task, in one run"),
    Command("bench codec", bench_cli.add_codec_arguments,
            bench_cli.run_codec, "codec round-trip quality and speed"),
    Command("bench train", bench_cli.add_train_arguments,
            bench_cli.run_train, "training step time and throughput",
            overrides=True),
)


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="lmdm", description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--debug", action="store_true",
                 help="show the full traceback of an error (also "
                 "LMDM_DEBUG=1; may also follow the command)")
  top = p.add_subparsers(dest="command", required=True)
  groups = {}
  for c in COMMANDS:
    *group, name = c.words.split()
    sub = top
    if group:
      (g,) = group
      if g not in groups:
        gp = top.add_parser(g, help=GROUPS[g])
        groups[g] = gp.add_subparsers(dest=f"{g}_command", required=True)
      sub = groups[g]
    cp = sub.add_parser(name, help=c.help, description=c.description or
                        c.help,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    if c.overrides:
      cp.__class__ = train_cli._OverrideParser
      cp.set_defaults(overrides=[])
    c.add_arguments(cp)
    cp.set_defaults(fn=c.run)
  return p


def main(argv=None) -> int:
  """Parses argv and runs the command under the one error handler
  (`lmdm_jax.cliutil.run`): one line and exit 2 for bad input, 1 for a
  failure, 130 for Ctrl-C; --debug shows the traceback instead."""
  import os
  from lmdm_jax import cliutil
  argv = list(sys.argv[1:] if argv is None else argv)
  debug = "--debug" in argv or os.environ.get("LMDM_DEBUG", "") not in (
      "", "0")
  argv = [a for a in argv if a != "--debug"]
  args = build_parser().parse_args(argv)
  name = " ".join(x for x in (args.command, getattr(
      args, f"{args.command}_command", None)) if x)   # "data build"
  return cliutil.run(args.fn, args, name, debug=debug)


if __name__ == "__main__":
  sys.exit(main())
