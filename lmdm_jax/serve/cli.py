"""`lmdm serve`: the command line (arguments, the run loop, the files).

  lmdm serve [--checkpoint PKG] [--port 8710] [--host 127.0.0.1 --token T]
      [--prompt TEXT] [--steps-options 2,4,8] [--osc-port 9000]
      [--midi PORT --midi-map map.json] [--seconds S] [--out perf.wav]
      [--log controls.json]

Builds the session (lmdm_jax/serve/engine.py), serves the page and the
socket (server.py), optionally OSC (osc.py) and MIDI (midi.py), starts
paused (the page's Play starts the music) and runs until Ctrl-C or
--seconds; then writes --log (every command with the block it first applied
to, and every block's controls) and prints a one-line summary.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import time

from lmdm_jax.serve.server import Server, check_bind


def check_args(args) -> None:
  """Raises ValueError for arguments that cannot make a server."""
  import math
  check_bind(args.host, args.token)
  for flag, port in (("--port", args.port), ("--osc-port", args.osc_port)):
    if not 0 <= port <= 65535:
      raise ValueError(f"{flag} must be in [0, 65535], got {port}")
  if args.steps is not None and not 1 <= args.steps <= 100:
    raise ValueError(f"--steps must be in [1, 100], got {args.steps}")
  if args.cfg is not None and (not math.isfinite(args.cfg) or args.cfg < 0):
    raise ValueError(f"--cfg must be finite and >= 0, got {args.cfg}")
  if not 1 <= args.max_sessions <= 16:
    raise ValueError(f"--max-sessions must be in [1, 16], got "
                     f"{args.max_sessions}")
  if args.buffer_blocks < 1:
    raise ValueError(f"--buffer-blocks must be >= 1, got "
                     f"{args.buffer_blocks}")
  if args.drop_frames < 0:
    raise ValueError(f"--drop-frames must be >= 0, got {args.drop_frames}")
  if args.midi_map and not os.path.isfile(args.midi_map):
    raise ValueError(f"--midi-map {args.midi_map!r}: no such file")
  if args.seconds is not None and not (math.isfinite(args.seconds)
                                       and args.seconds > 0):
    raise ValueError(f"--seconds must be > 0, got {args.seconds}")
  from lmdm_jax.live.cli import _check_path
  _check_path(args.out, "--out", ".wav")
  _check_path(args.log, "--log", ".json")


def run(args, log) -> int:
  check_args(args)
  from lmdm_jax.serve.engine import build
  engine = build(args, log)
  server = Server(engine, args.host, args.port, args.token, log)
  server.max_sessions, server.make_engine = args.max_sessions, engine.another
  server.start_in_thread()
  extras = []
  if args.osc_port:
    from lmdm_jax.serve.osc import OscBridge
    extras.append(OscBridge(engine, args.osc_host, args.osc_port, log))
  if args.midi:
    from lmdm_jax.serve.midi import MidiBridge
    extras.append(MidiBridge.open(engine, args.midi, args.midi_map, log))
  # Paused until a page presses Play: the buffer fills, nothing is late.
  engine.player.paused = True
  engine.start(record=args.out or False)
  end = None if args.seconds is None else time.perf_counter() + args.seconds
  # SIGINT and SIGTERM stop it cleanly (recording and log written) whatever
  # the parent left them as: a shell without job control starts `&` jobs
  # with SIGINT ignored, which Python keeps (as `lmdm generate` does). The
  # handlers are in place before "ready" is printed (a signal sent on
  # reading it must not find SIG_IGN), and they only set a flag that the
  # loop polls: an exception raised from a handler can land inside a
  # garbage-collection callback (jax's), where Python swallows it.
  from lmdm_jax.live.generate import _signals
  stop = []

  def on_signal(signum, frame):
    del frame
    stop.append(signum)

  try:
    with _signals(on_signal):
      log(f"ready; open {server.url()} and press Play")
      while engine.player.error is None and not stop:
        if end is not None and time.perf_counter() > end:
          break
        time.sleep(0.2)
  except KeyboardInterrupt:            # no handlers off the main thread
    stop.append(signal.SIGINT)
  if engine.player.error is not None:
    log(f"generation failed: {engine.player.error!r}")
  elif stop:
    log("stopping")
  for x in extras:
    x.close()
  server.stop_thread()
  for other in server.engines[1:]:
    try:
      other.stop()
    except Exception as e:             # noqa: BLE001
      log(f"a page's own session failed: {e!r}")
  try:
    engine.stop()
  except Exception as e:               # noqa: BLE001
    log(f"generation failed: {e!r}")
    return 1
  if args.log:
    with open(args.log, "w") as f:
      json.dump(engine.control_log(), f, indent=1)
  pl = engine.player
  log(f"played {pl.callbacks * pl.period / pl.codec.sample_rate:.1f} s: "
      f"{engine.next_block()} blocks, {pl.underruns} underruns, "
      f"{engine.refused} refused messages")
  return 0


def add_arguments(p) -> None:
  """`lmdm serve`'s arguments."""
  p.add_argument("--checkpoint", default=None,
                 help="an `lmdm export` package or demo|sketch|jam "
                 "(default: the shipped demo)")
  p.add_argument("--host", default="127.0.0.1",
                 help="bind address (default loopback; others need --token)")
  p.add_argument("--port", type=int, default=8710)
  p.add_argument("--token", default=None,
                 help="secret the page and socket must give (?token=)")
  p.add_argument("--prompt", default="")
  p.add_argument("--steps-options", default="2,4,8")
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--cfg", type=float, default=None)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--buffer-blocks", type=int, default=2)
  p.add_argument("--drop-frames", type=int, default=0)
  p.add_argument("--osc-port", type=int, default=0,
                 help="UDP port for OSC (/lmdm/...; 0: off)")
  p.add_argument("--osc-host", default="127.0.0.1")
  p.add_argument("--midi", default=None, metavar="PORT",
                 help="MIDI input port name (mido + python-rtmidi)")
  p.add_argument("--midi-map", default=None,
                 help="JSON mapping of CCs and notes (lmdm_jax/serve/midi.py)")
  p.add_argument("--out", default=None, help="record the stream (WAV)")
  p.add_argument("--log", default=None, help="control log at exit (JSON)")
  p.add_argument("--max-sessions", type=int, default=1,
                 help="sessions playing at once: a page may ask for its own "
                 "(the compiled programs are shared; compute is not)")
  p.add_argument("--seconds", type=float, default=None,
                 help="stop after this long (default: at Ctrl-C)")


def _cli(args) -> int:
  import sys
  return run(args, lambda s: print(f"[serve] {s}", file=sys.stderr,
                                   flush=True))


def server_doc() -> str:
  from lmdm_jax.serve import server
  return server.__doc__.split("\n\n", 1)[1]
