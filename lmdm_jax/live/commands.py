"""The `lmdm live` command language, and applying it to a playing session.

One line of terminal (or script) input -> `parse_command` -> `Command`;
`LiveApp.handle` applies it between two blocks of a `LiveSession` played by a
`Player` (lmdm_jax/live/{session,player}.py), so its controls take
effect from exactly the next block generated, and logs it. `lmdm live`
(lmdm_jax/live/cli.py) reads the lines and plays.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Dict, List, Optional, Tuple

from lmdm_jax.live import control_ranges as ranges

DEFAULT_CROSSFADE_BLOCKS = 4

HELP = """\
commands (each applies to the next block generated; buffered audio plays
out first):
  p TEXT               play TEXT alone
  mix A=0.7; B=0.3     weighted mix of prompts (weights in [0, 1e6],
                       normalised; at most 16 prompts)
  x TEXT [N]           crossfade to TEXT (or a mix A=..; B=..) over N
                       blocks, 1 to 1000 (default 4)
  cfg X [R]            guidance scale X in [0, 25] (1 = off; [0, 1] with
                       --plus-plus), CFG rescale R in [0, 1]
  steps K              denoising steps per block (compiled options only)
  seed N               noise seed (int32)
  drop [D]             zero the oldest D context frames (default
                       --drop-frames) and re-prime: follow the prompt, not
                       the past
  status               block, time, buffer, underruns, controls
  wait [N]             wait until N more blocks are generated (scripts)
  help                 this text
  q                    quit: write the recording and the control log"""

ALIASES = {"p": "p", "prompt": "p", "mix": "mix", "x": "x", "xfade": "x",
           "crossfade": "x", "cfg": "cfg", "steps": "steps", "seed": "seed",
           "drop": "drop", "status": "status", "s": "status",
           "wait": "wait", "help": "help", "h": "help", "?": "help",
           "q": "q", "quit": "q", "exit": "q"}


@dataclasses.dataclass(frozen=True)
class Command:
  """A parsed command line. args by name:
  p: (prompts,)  mix: (prompts,)  x: (prompts, blocks)  cfg: (scale, rescale)
  steps: (k,)  seed: (n,)  drop: (frames or None,)  wait: (blocks,)
  status / help / q: ()  where prompts is {text: weight}."""
  name: str
  args: tuple = ()


def parse_int(text: str, what: str) -> int:
  try:
    return int(text)
  except ValueError:
    raise ValueError(f"{what} must be an integer, got {text!r}") from None


def _float(text: str, what: str) -> float:
  try:
    x = float(text)
  except ValueError:
    raise ValueError(f"{what} must be a number, got {text!r}") from None
  if not math.isfinite(x):
    raise ValueError(f"{what} must be finite, got {text!r}")
  return x


def parse_mix(text: str) -> Dict[str, float]:
  """'A=0.7; B=0.3' -> {"A": 0.7, "B": 0.3} (weights >= 0, positive sum)."""
  prompts: Dict[str, float] = {}
  for part in text.split(";"):
    part = part.strip()
    if not part:
      continue
    name, eq, weight = part.rpartition("=")
    name = name.strip()
    if not eq or not name:
      raise ValueError(f"mix entries are TEXT=WEIGHT separated by ';', got "
                       f"{part!r}")
    w = ranges.check_weight(_float(weight.strip(), f"the weight of "
                                   f"{name!r}"), name)
    if name in prompts:
      raise ValueError(f"{name!r} appears twice in the mix")
    prompts[name] = w
  if not prompts:
    raise ValueError("mix needs at least one TEXT=WEIGHT")
  return ranges.check_prompts(prompts)


def parse_command(line: str) -> Optional[Command]:
  """One line of input -> Command; None for a blank line or a # comment.

  Raises ValueError saying what is wrong and what the command expects.
  """
  line = line.strip()
  if not line or line.startswith("#"):
    return None
  head, _, rest = line.partition(" ")
  rest = rest.strip()
  name = ALIASES.get(head.lower())
  if name is None:
    raise ValueError(f"unknown command {head!r}; type `help` for the list")
  words = rest.split()
  if name in ("status", "help", "q"):
    if rest:
      raise ValueError(f"{name} takes no arguments, got {rest!r}")
    return Command(name)
  if name == "p":
    if not rest:
      raise ValueError("p needs a prompt: p TEXT")
    return Command("p", ({rest: 1.0},))
  if name == "mix":
    return Command("mix", (parse_mix(rest),))
  if name == "x":
    if not rest:
      raise ValueError("x needs a prompt: x TEXT [BLOCKS]")
    blocks = DEFAULT_CROSSFADE_BLOCKS
    if len(words) > 1 and words[-1].lstrip("+-").isdigit():
      blocks = int(words[-1])
      rest = rest[:rest.rstrip().rindex(words[-1])].strip()
    blocks = ranges.check_crossfade(blocks, "x: blocks")
    prompts = parse_mix(rest) if "=" in rest else {rest: 1.0}
    return Command("x", (prompts, blocks))
  if name == "cfg":
    if not 1 <= len(words) <= 2:
      raise ValueError("cfg needs a scale and optionally a rescale: "
                       "cfg X [R]")
    # The CFG++ bound ([0, 1]) depends on the session: checked on apply.
    scale = ranges.check_cfg(_float(words[0], "cfg scale"))
    rescale = ranges.check_rescale(
        _float(words[1], "cfg rescale") if len(words) == 2 else 0.0)
    return Command("cfg", (scale, rescale))
  if name in ("steps", "seed"):
    if len(words) != 1:
      raise ValueError(f"{name} needs one integer: {name} N")
    n = parse_int(words[0], name)
    if name == "seed":
      ranges.check_seed(n)
    else:
      ranges.check_steps(n)
    return Command(name, (n,))
  if name in ("drop", "wait"):
    if len(words) > 1:
      raise ValueError(f"{name} takes at most one integer, got {rest!r}")
    n = parse_int(words[0], name) if words else None
    if name == "wait":
      n = 1 if n is None else n
      if n < 1:
        raise ValueError(f"wait: blocks must be >= 1, got {n}")
    return Command(name, (n,))
  raise AssertionError(name)


class Quit(Exception):
  """Raised by `LiveApp.handle` for `q`."""


def _fmt_prompts(prompts: Dict[str, float]) -> str:
  total = sum(prompts.values())
  items = [(p, w / total) for p, w in prompts.items() if w > 0]
  if len(items) == 1:
    return repr(items[0][0])
  return "; ".join(f"{p!r}={w:.2f}" for p, w in items)


class LiveApp:
  """Applies commands to a playing session, between two of its blocks.

  Every change is made under `player.lock`, which the player's generation
  thread holds while it generates a block, so a command's controls apply
  from exactly the next block, whose index the event log records
  (`session.log[i]` holds the controls block i was generated with).
  """

  def __init__(self, session, player, encoder=None,
               finished: Callable[[], bool] = lambda: False):
    self.session, self.player, self.encoder = session, player, encoder
    self.finished = finished
    self.events: List[dict] = []
    self.t0 = time.perf_counter()

  def unknown_words_note(self, prompts: Dict[str, float]) -> str:
    """' (what of the prompts has no effect, and why)' or ''
    (lmdm_jax/text/notes.py: unknown words, the token limit, ...)."""
    if self.encoder is None:
      return ""
    from lmdm_jax.text.notes import prompt_notes
    notes = []
    for p in prompts:
      notes += [n for n in prompt_notes(self.encoder, p) if n not in notes]
    return f" ({'; '.join(notes)})" if notes else ""

  def handle(self, line: str) -> Optional[str]:
    """Applies one command line; -> the message to show (None: blank).

    Raises ValueError for a bad command (nothing changed; playback goes
    on) and Quit for `q`. Every command is appended to `events`.
    """
    event = {"t_s": round(time.perf_counter() - self.t0, 3),
             "command": line.strip()}
    try:
      cmd = parse_command(line)
      if cmd is None:
        return None
      msg, block = self._apply(cmd)
    except ValueError as e:
      event.update(ok=False, message=str(e))
      self.events.append(event)
      raise
    event.update(ok=True, message=msg)
    if block is not None:
      event["block"] = block
    self.events.append(event)
    return msg

  def _apply(self, cmd: Command) -> Tuple[str, Optional[int]]:
    s = self.session
    if cmd.name == "q":
      raise Quit()
    if cmd.name == "help":
      return HELP, None
    if cmd.name == "wait":
      return self._wait(cmd.args[0]), None
    with self.player.lock:
      block = len(s.recorded)                 # the next block to generate
      if cmd.name == "status":
        return self._status(block), None
      if cmd.name in ("p", "mix"):
        (prompts,) = cmd.args
        s.set_prompts(prompts)
        what = f"prompt {_fmt_prompts(prompts)}{self.unknown_words_note(prompts)}"
      elif cmd.name == "x":
        prompts, blocks = cmd.args
        s.crossfade_to(prompts, blocks)
        what = (f"crossfade to {_fmt_prompts(prompts)} over {blocks} "
                f"blocks{self.unknown_words_note(prompts)}")
      elif cmd.name == "cfg":
        if not s.spec.cfg:
          raise ValueError("this session has no CFG branch (started with "
                           "--no-cfg-branch): cfg cannot change; restart "
                           "without it")
        scale, rescale = cmd.args
        ranges.check_cfg(scale, plus_plus=s.spec.plus_plus)
        s.set_cfg(scale, rescale)
        what = f"cfg {scale:g}" + (f" rescale {rescale:g}" if rescale else "")
      elif cmd.name == "steps":
        (k,) = cmd.args
        s.set_steps(ranges.check_steps(k, s.streams))
        what = f"steps {k}"
      elif cmd.name == "seed":
        s.set_seed(cmd.args[0])
        what = f"seed {cmd.args[0]}"
      elif cmd.name == "drop":
        frames = s.drop_frames if cmd.args[0] is None else cmd.args[0]
        context = s.spec.geometry.context
        try:
          ranges.check_drop(frames, context, what="drop: frames")
        except ValueError as e:
          raise ValueError(str(e) + (" (--drop-frames is 0: give D)"
                                     if cmd.args[0] is None else "")
                           ) from None
        s.drop_context(frames)
        what = f"dropped the oldest {frames} of {context} context frames"
      else:
        raise AssertionError(cmd.name)
      buffered = self.player.buffered_s()
    return (f"{what} from block {block} (heard after the {buffered:.1f} s "
            f"already buffered)"), block

  def _wait(self, blocks: int) -> str:
    """Blocks the command reader (not the music) for `blocks` blocks."""
    s = self.session
    target = len(s.recorded) + blocks
    block_s = self.player.block_samples / self.player.codec.sample_rate
    deadline = time.perf_counter() + blocks * (4 * block_s + 30)
    while len(s.recorded) < target:
      if self.finished():
        return f"playback ended at block {len(s.recorded)}"
      if self.player.error is not None:
        raise ValueError(f"wait: generation failed: {self.player.error!r}")
      if time.perf_counter() > deadline:
        raise ValueError(f"wait: no block {target} after "
                         f"{blocks * (4 * block_s + 30):.0f} s")
      time.sleep(0.01)
    return f"block {len(s.recorded)} generated"

  def _status(self, block: int) -> str:
    s, pl = self.session, self.player
    sr = pl.codec.sample_rate
    played = pl.callbacks * pl.period / sr
    last = pl.compute_s[-1] if pl.compute_s else float("nan")
    fade = f", crossfade {len(s._fade)} blocks to go" if s._fade else ""
    return (f"block {block}, {played:.1f} s played, {pl.buffered_s():.1f} s "
            f"buffered, {pl.underruns} underruns, last block computed in "
            f"{last * 1e3:.0f} ms | prompt {_fmt_prompts(s.prompts)}{fade}, "
            f"cfg {s.cfg_scale:g}" + (f" rescale {s.rescale:g}" if s.rescale
                                      else "")
            + f", steps {s.steps} of {sorted(s.streams)}, seed {s.seed}")

  def control_log(self, extra: Optional[dict] = None) -> dict:
    """The --log document: settings, commands (events) and blocks."""
    doc = dict(extra or {})
    doc.update(events=self.events, blocks=self.session.log)
    return doc
