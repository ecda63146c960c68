"""`lmdm live`: play a model in real time and steer it from the terminal.

  lmdm live --prompt "slow Bach chorale for string ensemble" \\
      [--checkpoint DIR] [--steps-options 2,4,8] [--cfg X] [--seconds S] \\
      [--simulate] [--out perf.wav] [--log controls.json] \\
      [--json latency.json] [--buffer-blocks N] [--drop-frames D] [--no-tui]

Builds a `LiveSession` (every step count in --steps-options compiled before
playing, so nothing compiles while playing) and a `Player`, prints the
latency accounting measured on a warm-up block, then plays: through the
sound card (sounddevice / PortAudio) when it is available, else, or with
--simulate, against a simulated sound card paced by the wall clock. Either
way the audio as played (silence where the model was late) is recorded.

While it plays, type commands, one per line (`help` lists them): `p TEXT`,
`mix A=0.7; B=0.3`, `x TEXT [N]`, `cfg X`, `steps K`, `seed N`,
`drop [D]`, `status`, `q`. A command changes the controls of the NEXT
block generated; audio already buffered (up to --buffer-blocks blocks)
plays out first, so a change is heard after about
compute per block + buffered audio (the control-to-sound latency printed
at start). A bad command prints why and the music goes on; an underrun (the
model was late) plays silence, is counted, and never stops playback.

`q` (or Ctrl-C, or the end of --seconds, or the end of input when there is
no --seconds) stops and writes: --out (the recording, WAV), --log (the
control log, JSON: every command with the block it first applied to, and
every block's controls) and, with --json, the latency figures and underrun
count. Commands may also come from a pipe or file (`wait N` then waits for N
more blocks, for scripts); --no-tui reads none and plays --seconds.

Generative delay (models with controls; without --checkpoint the shipped
sketch model, lmdm_jax/assets/sketch, or with --input-as partner the jam
model, lmdm_jax/assets/jam):
--input FILE (played in step with the output clock) or --input mic (the
sound card's input) is analysed block by block into the model's sketch
controls (--input-as sketch: it re-plays your line in its own sound) or
its partner control (--input-as partner: it accompanies you); the output
follows the input --delay seconds late (default: the buffering's minimum,
(buffer blocks + 1) blocks; see lmdm_jax/live/live_input.py).

The command language and its application to the session between blocks are
in lmdm_jax/live/commands.py; this module is the command line: checks,
model and session set-up, latency accounting, the play loop and the files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import queue
import sys
import threading
import time
from typing import Callable, List, Optional

from lmdm_jax.cliutil import printable
from lmdm_jax.live import control_ranges as ranges
from lmdm_jax.live.commands import HELP, LiveApp, Quit, parse_int
from lmdm_jax.live.latency import measure_latency, percentiles


# -- the command ---------------------------------------------------------------
def parse_steps_options(text: str) -> List[int]:
  opts = []
  for part in text.split(","):
    part = part.strip()
    if part:
      opts.append(ranges.check_steps(parse_int(
          part, "each --steps-options entry"), what="--steps-options entries"))
  if not opts:
    raise ValueError(f"--steps-options needs at least one step count, got "
                     f"{text!r}")
  return sorted(set(opts))


def _check_path(path: Optional[str], flag: str, ext: str) -> None:
  if path is None:
    return
  if not path.lower().endswith(ext):
    raise ValueError(f"{flag} must name a {ext} file, got {path!r}")
  from lmdm_jax.live.generate import check_writable
  check_writable(path, flag)


def check_args(args) -> None:
  """Raises ValueError for arguments that cannot make a live session."""
  if args.seconds is not None and (not math.isfinite(args.seconds) or
                                   not 0 < args.seconds <= 86400):
    raise ValueError(f"--seconds must be in (0, 86400], got {args.seconds}")
  if args.no_pace and not args.simulate:
    raise ValueError("--no-pace applies to the simulated clock: add "
                     "--simulate")
  if args.no_tui and args.seconds is None:
    raise ValueError("--no-tui reads no commands, so it needs --seconds")
  _check_path(args.out, "--out", ".wav")
  _check_path(args.log, "--log", ".json")
  _check_path(args.json, "--json", ".json")
  if args.steps is not None:
    ranges.check_steps(args.steps, what="--steps")
  if args.cfg is not None:       # --plus-plus's [0, 1]: checked below
    ranges.check_cfg(args.cfg, what="--cfg")
  ranges.check_seed(args.seed, what="--seed")
  if args.plus_plus and (args.no_cfg_branch or (
      args.cfg is not None and args.cfg > 1.0)):
    raise ValueError("--plus-plus (Ping-Pong++) needs the cfg branch and a "
                     "guidance weight --cfg in [0, 1] (paper: 0.7)")
  if args.buffer_blocks < 1:
    raise ValueError(f"--buffer-blocks must be >= 1, got "
                     f"{args.buffer_blocks}")
  if args.drop_frames < 0:        # the upper bound needs the model: run()
    raise ValueError(f"--drop-frames must be >= 0, got {args.drop_frames}")
  if args.input is not None and args.input != "mic" and not os.path.isfile(
      args.input):
    raise ValueError(f"--input must be an audio file or 'mic', got "
                     f"{args.input!r} (no such file)")
  if args.delay is not None and (not math.isfinite(args.delay) or
                                 args.delay < 0):
    raise ValueError(f"--delay must be >= 0 seconds, got {args.delay}")
  if args.input is None and (args.delay is not None or args.input_as):
    raise ValueError("--delay and --input-as need --input FILE|mic")
  parse_steps_options(args.steps_options)


def _stdin_reader(lines: "queue.Queue[Optional[str]]") -> None:
  """Puts each line of stdin on `lines`, then None at end of input.

  Reads the file descriptor, not sys.stdin: a daemon thread blocked inside
  sys.stdin's buffered reader can abort the interpreter's shutdown.
  """
  pending = b""
  try:
    while True:
      chunk = os.read(0, 4096)
      if not chunk:
        break
      pending += chunk
      *done, pending = pending.split(b"\n")
      for line in done:
        lines.put(line.decode("utf-8", "replace"))
  except OSError:
    pass
  if pending:
    lines.put(pending.decode("utf-8", "replace"))
  lines.put(None)


def run(args, log: Callable[[str], None], say: Callable[[str], None]) -> int:
  """The `lmdm live` session. log: progress (stderr); say: replies."""
  check_args(args)
  from lmdm_jax import pretrained
  from lmdm_jax.live import block_level, output_stage
  from lmdm_jax.live.player import Player
  from lmdm_jax.live.recording import LatentLog
  from lmdm_jax.live.session import LiveSession
  from lmdm_jax.streaming.state import StreamSpec
  import jax

  pkg = pretrained.load(pretrained.for_controls(
      args.checkpoint, sketch=args.input is not None and
      args.input_as != "partner", partner=args.input_as == "partner"))
  d = pkg.defaults
  steps = int(args.steps if args.steps is not None else d.get("steps", 8))
  options = parse_steps_options(args.steps_options)
  if steps not in options:
    options = sorted(set(options) | {steps})
  cfg_scale = float(args.cfg if args.cfg is not None
                    else 0.7 if args.plus_plus else d.get("cfg_scale", 1.0))
  cfg_branch = not args.no_cfg_branch
  if args.plus_plus and (not cfg_branch or not 0.0 <= cfg_scale <= 1.0):
    raise ValueError(f"--plus-plus (Ping-Pong++ / CFG++) needs the cfg "
                     f"branch and a guidance weight in [0, 1] (paper: 0.7), "
                     f"got {cfg_scale:g}")
  if not cfg_branch and cfg_scale != 1.0:
    raise ValueError(f"--no-cfg-branch plays without guidance, but the cfg "
                     f"scale is {cfg_scale:g} (give --cfg 1)")
  g = pkg.geometry
  ranges.check_drop(args.drop_frames, g.context, allow_zero=True,
                    what="--drop-frames")
  sampler = args.sampler or d.get("sampler", "pingpong")
  encoder = pkg.text_encoder()
  spec = StreamSpec(pkg.dit, g, batch=1, cond_tokens=pkg.cond_tokens,
                    steps=steps, sampler=sampler, cfg=cfg_branch,
                    plus_plus=bool(args.plus_plus))
  codec = pkg.make_codec()
  t0 = time.perf_counter()
  session = LiveSession(pkg.params["dit"], spec, encoder.encode_one,
                        global_cond=pkg.global_cond(), steps_options=options,
                        drop_frames=args.drop_frames,
                        seed=args.seed, progress=log)
  compile_s = time.perf_counter() - t0
  session.recorded = LatentLog()        # counts blocks; keeps no latents
  session.set_cfg(cfg_scale)
  player = Player(session, codec, buffer_blocks=args.buffer_blocks,
                  overlap=1, output=output_stage.for_package(pkg, codec),
                  level=block_level.for_package(pkg, codec))
  app = LiveApp(session, player, encoder)
  live_in, mic = _attach_input(args, pkg, session, player, codec, log)
  if args.prompt.strip():
    session.set_prompts({args.prompt: 1.0})
    log(f"prompt {args.prompt!r}"
        + app.unknown_words_note({args.prompt: 1.0}))
  else:
    log("empty prompt: the model plays unconditioned (its 'no text' input) "
        "until a `p TEXT` command")
  latency = measure_latency(session, player, log)

  output = "simulated"
  if not args.simulate:
    try:
      player.start_sounddevice(record=args.out)
      output = "sounddevice"
    except RuntimeError as e:
      log(f"{e}; playing against the simulated clock instead")
  if output == "simulated":
    player.start_simulated(args.seconds, record=args.out,
                           pace=not args.no_pace)

    def finished() -> bool:
      return player.wait(0)
  else:
    end = (None if args.seconds is None
           else time.perf_counter() + args.seconds)

    def finished() -> bool:
      return end is not None and time.perf_counter() >= end
  app.finished = finished
  app.t0 = time.perf_counter()
  log(f"playing ({output} output"
      + (f", {args.seconds:g} s" if args.seconds else ", until q") + ")")

  lines: "queue.Queue[Optional[str]]" = queue.Queue()
  if not args.no_tui:
    say(HELP)
    threading.Thread(target=_stdin_reader, args=(lines,),
                     daemon=True).start()
  eof = args.no_tui
  underruns_told, told_at = 0, 0.0
  rejected_told = 0
  rc = 0
  try:
    while True:
      if finished():
        break
      if player.error is not None:
        say(f"generation failed: {player.error!r}; stopping")
        rc = 1
        break
      if (not args.no_tui and player.underruns > underruns_told
          and time.perf_counter() - told_at > 2.0):
        underruns_told, told_at = player.underruns, time.perf_counter()
        say(f"underrun: the model was late ({underruns_told} so far); "
            f"lower `steps` or raise --buffer-blocks")
      if len(session.rejected_blocks) > rejected_told:
        rejected_told = len(session.rejected_blocks)
        say(f"block {session.rejected_blocks[-1]} came out non-finite and "
            f"was replaced by the previous one ({rejected_told} so far); "
            f"controls in force: cfg {session.log[-1]['cfg_scale']:g}, "
            f"steps {session.log[-1]['steps']}")
      if eof:
        time.sleep(0.05)
        continue
      try:
        line = lines.get(timeout=0.05)
      except queue.Empty:
        continue
      if line is None:
        eof = True
        if args.seconds is None:
          break                         # end of input, no end time: quit
        continue
      try:
        msg = app.handle(line)
      except ValueError as e:
        say(f"error: {e}")
        continue
      except Quit:
        break
      if msg:
        say(msg)
  except KeyboardInterrupt:
    say("interrupted")
  if mic is not None:
    mic.stop()
    mic.close()
  try:
    report = player.stop()
  except Exception as e:                # noqa: BLE001  (reported, not lost)
    say(f"generation failed: {e!r}")
    report = player.report(player.callbacks * player.period
                           / codec.sample_rate)
    rc = 1

  # The recording went to args.out as it played (player.stop closed it).
  played_s = player.callbacks * player.period / codec.sample_rate
  log_path = args.log or os.path.splitext(args.out)[0] + ".controls.json"
  settings = {"model": os.path.abspath(pkg.path), "prompt": args.prompt,
              "steps_options": sorted(session.streams), "sampler": sampler,
              "cfg_branch": cfg_branch, "plus_plus": bool(args.plus_plus),
              "drop_frames": args.drop_frames,
              "buffer_blocks": args.buffer_blocks, "output": output,
              "input": args.input,
              "input_as": live_in.names if live_in is not None else None,
              "delay_frames": live_in.delay if live_in is not None else None,
              "input_heard_fraction": (live_in.given_fraction
                                       if live_in is not None else None),
              "block_s": latency["block_s"],
              "sample_rate": codec.sample_rate}
  with open(log_path, "w") as f:
    json.dump(app.control_log(settings), f, indent=1)
  figures = dict(settings)
  figures.update(
      seconds_played=played_s, blocks=len(session.recorded),
      underruns=player.underruns, callbacks=player.callbacks,
      rejected_blocks=session.rejected_blocks,
      levels=(player.output.levels() if player.output is not None
              else None),
      latency_at_start=latency, report=report, compile_s=compile_s,
      compute_per_block_s=percentiles(player.compute_s),
      model_per_block_s=percentiles([e["compute_s"] for e in session.log]),
      out=os.path.abspath(args.out), log=os.path.abspath(log_path),
      device=f"{jax.devices()[0].platform} x{jax.device_count()}",
      jax=jax.__version__)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(figures, f, indent=2)
  lv = player.output.levels() if player.output is not None else None
  say(f"played {played_s:.1f} s: {len(session.recorded)} blocks, "
      f"{player.underruns} underruns"
      + (f", {len(session.rejected_blocks)} non-finite blocks replaced"
         if session.rejected_blocks else "")
      + (f"; level {lv['rms_dbfs']:.1f} dBFS RMS, peak {lv['peak_dbfs']:.1f}"
         f" dBFS, limited {100 * lv['limited_fraction']:.1f} % (at most "
         f"{lv['max_gain_reduction_db']:.1f} dB)" if lv and lv["samples"]
         else "")
      + f"; wrote {args.out}, {log_path}"
      + (f", {args.json}" if args.json else ""))
  return rc


def _attach_input(args, pkg, session, player, codec, log):
  """--input FILE|mic: the generative delay. -> (LiveInput, mic stream)."""
  if args.input is None:
    return None, None
  from lmdm_jax.model import control_inputs
  from lmdm_jax.live import live_input
  from lmdm_jax.live import track
  dims = pkg.dit.control_dims
  kind = args.input_as or ("sketch" if any(
      n != control_inputs.PARTNER for n in dims) else "partner")
  if kind == "partner":
    if control_inputs.PARTNER not in dims:
      raise ValueError(f"{pkg.path} has no partner control; --input-as "
                       f"partner needs a jam model (lmdm_jax/assets/jam)")
    names = [control_inputs.PARTNER]
  else:
    names = track.sketch_names(dims)
  g = pkg.geometry
  delay = (live_input.default_delay(g.block, args.buffer_blocks)
           if args.delay is None
           else int(round(args.delay * codec.frame_rate)))
  channels = 1 if args.input == "mic" else codec.channels
  live = live_input.LiveInput(codec, names, g.context, g.block, delay,
                              channels=channels)
  log(f"input {args.input} as {kind} ({', '.join(names)}), generative "
      f"delay {delay} frames = {delay / codec.frame_rate:.2f} s (analysis "
      f"warmed up in {live.warm_up():.1f} s)")
  if args.input == "mic":
    try:
      return live, live_input.attach_mic(session, live, codec.sample_rate,
                                         channels)
    except RuntimeError as e:
      raise ValueError(f"--input mic: {e}") from e
  from lmdm_jax.data.audio import read_converted
  live_input.attach_file(session, player, live, read_converted(args.input,
                                                               codec))
  return live, None


def _cli(args) -> int:
  lock = threading.Lock()

  # Everything echoed has its control characters escaped (a prompt with
  # a NUL or a right-to-left override cannot rewrite the terminal).
  def say(s):
    with lock:
      print(printable(s), flush=True)

  def log(s):
    with lock:
      print(f"[live] {printable(s)}", file=sys.stderr, flush=True)
  return run(args, log, say)         # errors: cli.main's one handler


def add_arguments(p: argparse.ArgumentParser) -> None:
  """`lmdm live`'s arguments (the command is registered in
  lmdm_jax/cli.py)."""
  p.add_argument("--prompt", required=True)
  p.add_argument("--checkpoint", default=None,
                 help="an `lmdm export` package (default: the shipped demo; "
                 "with --input the shipped sketch model, with --input-as "
                 "partner the jam model)")
  p.add_argument("--steps-options", default="2,4,8",
                 help="step counts compiled at start, the choices of "
                 "`steps K` (default 2,4,8; --steps is added)")
  p.add_argument("--steps", type=int, default=None,
                 help="initial steps per block (default: the model's)")
  p.add_argument("--cfg", type=float, default=None,
                 help="initial guidance scale (default: the model's)")
  p.add_argument("--no-cfg-branch", action="store_true",
                 help="compile without the unconditional branch: half the "
                 "compute, but `cfg` cannot change")
  p.add_argument("--plus-plus", action="store_true",
                 help="Ping-Pong++ (CFG++): re-noise around the "
                 "unconditional prediction; `cfg` is then a weight in "
                 "[0, 1] (default 0.7, the paper's for prompt transitions)")
  p.add_argument("--sampler", default=None, choices=("euler", "pingpong"))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--seconds", type=float, default=None,
                 help="stop after this long (default: at q / end of input)")
  p.add_argument("--simulate", action="store_true",
                 help="simulated sound card (wall-clock paced), not "
                 "PortAudio")
  p.add_argument("--no-pace", action="store_true",
                 help="with --simulate: the clock runs as fast as compute, "
                 "not the wall clock (soak tests; renders through the live "
                 "path)")
  p.add_argument("--out", default="live.wav",
                 help="the recording as played (WAV)")
  p.add_argument("--log", default=None,
                 help="control log JSON (default: OUT with .controls.json)")
  p.add_argument("--json", default=None,
                 help="latency figures and underruns (JSON)")
  p.add_argument("--buffer-blocks", type=int, default=2,
                 help="blocks of audio generated ahead of the speaker")
  p.add_argument("--drop-frames", type=int, default=0,
                 help="context frames dropped when the dominant prompt "
                 "changes, and `drop`'s default (0: never)")
  p.add_argument("--no-tui", action="store_true",
                 help="read no commands: play --seconds and stop")
  p.add_argument("--input", default=None, metavar="FILE|mic",
                 help="generative delay: audio played along (a file in step "
                 "with the output, or the sound card's input) steers the "
                 "model's controls")
  p.add_argument("--input-as", default=None, choices=("sketch", "partner"),
                 help="--input as sketch controls (re-synthesis) or as the "
                 "partner (accompaniment); default: sketch if the model has "
                 "sketch controls")
  p.add_argument("--delay", type=float, default=None, metavar="S",
                 help="--input: the output follows the input S seconds "
                 "late (default (buffer blocks + 1) blocks)")
