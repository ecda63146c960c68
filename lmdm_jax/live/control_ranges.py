"""The documented ranges of every live control, checked in one place.

Every input that steers a stream (the `lmdm generate` / `lmdm live` flags,
`LiveSession`'s setters, the `lmdm live` command language, and any later
web/OSC/MIDI front end) validates through these functions, so a value a
front end accepts is one the stream is known to survive. Each check raises
ValueError with one line naming the control, the range and the value, and
returns the value normalised (float / int).

Ranges and why:

  cfg scale      [0, CFG_MAX = 25]  (1 = off). stable-audio-tools' UI
                 offers 0-25; past that the guided velocity is mostly the
                 difference of two predictions, and at 1e30 float32
                 overflows to NaN (issue 20).
  cfg++ weight   [0, 1] (Ping-Pong++ / CFG++ interpolates x0 estimates).
  cfg rescale    [0, 1] (phi of the std rescale).
  prompt weight  [0, WEIGHT_MAX = 1e6], finite, positive sum; at most
                 MIX_MAX = 16 prompts. Weights are normalised, so only
                 ratios matter; the bound keeps the sum finite (1e308 +
                 1e308 = inf would turn the mix into the unconditional
                 prompt) and still admits percentages.
  steps          [1, STEPS_MAX = 100] at start; while playing, one of the
                 step counts compiled at start (nothing compiles live).
  crossfade      [1, CROSSFADE_MAX = 1000] blocks (18.5 min of the demo
                 model's 1.11 s blocks); a longer fade is a list the host
                 builds while holding the player's lock.
  seed           int32: [-2**31, 2**31) (the stream's PRNG seed is int32).
  context drop   [1, context frames] for a drop; [0, context] for the
                 `--drop-frames` default (0: never).

Pure Python (no JAX): front ends import it without starting a backend.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Iterable, Mapping

CFG_MAX = 25.0
WEIGHT_MAX = 1e6
MIX_MAX = 16
STEPS_MAX = 100
CROSSFADE_MAX = 1000
SEED_MIN, SEED_MAX = -2 ** 31, 2 ** 31 - 1


def _number(value, what: str) -> float:
  """A finite real number (bools and strings refused)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f"{what} must be a number, got {value!r}")
  x = float(value)
  if not math.isfinite(x):
    raise ValueError(f"{what} must be finite, got {value!r}")
  return x


def _integer(value, what: str) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{what} must be an integer, got {value!r}")
  return int(value)


def check_cfg(scale, plus_plus: bool = False, what: str = "cfg scale"
              ) -> float:
  """Guidance scale in [0, CFG_MAX], or a CFG++ weight in [0, 1]."""
  x = _number(scale, what)
  hi = 1.0 if plus_plus else CFG_MAX
  if not 0.0 <= x <= hi:
    kind = ("a Ping-Pong++ (CFG++) guidance weight" if plus_plus else
            "a guidance scale (1 = off)")
    raise ValueError(f"{what} must be in [0, {hi:g}] ({kind}), got {x:g}")
  return x


def check_rescale(rescale, what: str = "cfg rescale") -> float:
  x = _number(rescale, what)
  if not 0.0 <= x <= 1.0:
    raise ValueError(f"{what} must be in [0, 1], got {x:g}")
  return x


def check_weight(weight, name: str) -> float:
  w = _number(weight, f"the weight of {name!r}")
  if not 0.0 <= w <= WEIGHT_MAX:
    raise ValueError(f"the weight of {name!r} must be in [0, {WEIGHT_MAX:g}]"
                     f", got {w:g}")
  return w


def check_prompts(prompts: Mapping[str, float]) -> Dict[str, float]:
  """A prompt mix {text: weight}: 1..MIX_MAX prompts, weights in [0,
  WEIGHT_MAX], not all zero. -> a dict with float weights."""
  if not isinstance(prompts, Mapping):
    raise ValueError(f"prompts must map text to weight, got {prompts!r}")
  if not prompts:
    raise ValueError("prompts must name at least one prompt")
  if len(prompts) > MIX_MAX:
    raise ValueError(f"a mix holds at most {MIX_MAX} prompts, got "
                     f"{len(prompts)}")
  out = {}
  for name, w in prompts.items():
    if not isinstance(name, str):
      raise ValueError(f"a prompt must be text, got {name!r}")
    out[name] = check_weight(w, name)
  if not any(w > 0 for w in out.values()):
    raise ValueError("prompt weights must not all be zero")
  return out


def normalised_weights(weights: Iterable[float]):
  """Weights / their sum, without overflow (divides by the largest first).
  -> list of floats summing to 1."""
  ws = [float(w) for w in weights]
  top = max(ws)
  if not top > 0 or not math.isfinite(top):
    raise ValueError(f"weights must be finite with a positive sum, got {ws}")
  ws = [w / top for w in ws]
  total = sum(ws)
  return [w / total for w in ws]


def check_steps(steps, options=None, what: str = "steps") -> int:
  """Steps per block in [1, STEPS_MAX]; with `options` (the step counts
  compiled at start) one of them."""
  k = _integer(steps, what)
  if options is not None:
    opts = sorted(options)
    if k not in opts:
      raise ValueError(f"{what} {k} was not compiled at start; choose from "
                       f"{opts} (restart with --steps-options to offer "
                       f"others)")
    return k
  if not 1 <= k <= STEPS_MAX:
    raise ValueError(f"{what} must be in [1, {STEPS_MAX}], got {k}")
  return k


def check_crossfade(blocks, what: str = "crossfade blocks") -> int:
  n = _integer(blocks, what)
  if not 1 <= n <= CROSSFADE_MAX:
    raise ValueError(f"{what} must be in [1, {CROSSFADE_MAX}], got {n}")
  return n


def check_seed(seed, what: str = "seed") -> int:
  n = _integer(seed, what)
  if not SEED_MIN <= n <= SEED_MAX:
    raise ValueError(f"{what} must fit in int32 [{SEED_MIN}, {SEED_MAX}], "
                     f"got {n}")
  return n


def check_drop(frames, context: int, allow_zero: bool = False,
               what: str = "drop frames") -> int:
  """Context frames to drop: [1, context] ([0, context] with allow_zero,
  for a default where 0 means never)."""
  n = _integer(frames, what)
  lo = 0 if allow_zero else 1
  if not lo <= n <= context:
    raise ValueError(f"{what} must be in [{lo}, {context}] (the context "
                     f"length), got {n}")
  return n
