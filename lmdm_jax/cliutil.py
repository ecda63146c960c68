"""What every `lmdm` command shares: safe echo, extras, errors, exit codes.

- `printable(s)`: user text (prompts, paths, error messages quoting them)
  with control and bidirectional-format characters escaped, so a NUL, an
  ANSI escape or a right-to-left override in a prompt cannot rewrite the
  terminal when it is echoed.
- `require(module, extra, feature)`: imports an optional dependency or
  fails with the `pip install -e ".[extra]"` that brings it, before any
  model is loaded or compiled.
- `run(fn, args, name, debug)`: the one error handler of `lmdm.cli.main`:
  one line `lmdm CMD: error: ...` and exit code USAGE (2) for bad input
  (ValueError and "no such file" kinds), RUNTIME (1) for other failures,
  INTERRUPTED (130) for Ctrl-C; `--debug` (or LMDM_DEBUG=1) re-raises so
  the traceback shows.
- `int_list("0,1,2")`: an argparse `type` for comma-separated integers
  (seeds, step counts), refusing anything else with a usage error.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import unicodedata
from typing import Callable

USAGE, RUNTIME, INTERRUPTED = 2, 1, 130

# Exceptions that mean "what you asked for cannot be done as asked".
USAGE_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError,
                IsADirectoryError, FileExistsError)

# Optional modules -> the setup.py extra that installs them (the first extra
# listing the module; `require` callers name the one their command needs).
EXTRAS = {"soundfile": "data", "librosa": "data", "scipy": "eval",
          "tensorflow_datasets": "data", "array_record": "data",
          "grain": "data", "tensorboardX": "data", "sounddevice": "live",
          "safetensors": "convert", "sentencepiece": "convert",
          "music21": "demo", "mido": "demo", "matplotlib": "bench"}


def int_list(text: str) -> list:
  """argparse type: "0,1,2" -> [0, 1, 2] (at least one integer)."""
  try:
    out = [int(s) for s in str(text).split(",")]
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected comma-separated integers, got {text!r}") from None
  return out


class MissingExtra(ImportError):
  """An optional dependency is not installed; str(e) says how to get it."""


def install_hint(module: str, extra: str | None = None) -> str:
  extra = extra or EXTRAS.get(module.split(".")[0])
  if extra is None:
    return f"pip install {module.split('.')[0]}"
  return f'pip install -e ".[{extra}]"'


def require(module: str, extra: str, feature: str):
  """Imports `module` or raises MissingExtra naming the pip install."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise MissingExtra(
        f"{feature} needs the {module!r} package, which is not installed "
        f"({e}); install it with: {install_hint(module, extra)}") from e


def printable(text, keep: str = "\n") -> str:
  """str(text) with every non-printable character (C0/C1 controls, NUL,
  ESC, bidi overrides and other format characters, line/paragraph
  separators) written as \\xNN / \\uNNNN, except those in `keep`."""
  text = str(text)
  if text.isprintable() and not any(c in text for c in "\x1b\x7f"):
    return text
  out = []
  for c in text:
    if c in keep or (c.isprintable() and unicodedata.category(c) != "Cf"):
      out.append(c)
    elif ord(c) < 0x100:
      out.append(f"\\x{ord(c):02x}")
    elif ord(c) < 0x10000:
      out.append(f"\\u{ord(c):04x}")
    else:
      out.append(f"\\U{ord(c):08x}")
  return "".join(out)


def error_line(name: str, e: BaseException) -> str:
  """`lmdm NAME: error: MESSAGE` on one line, control characters escaped."""
  msg = str(e) or type(e).__name__
  if isinstance(e, ModuleNotFoundError) and not isinstance(e, MissingExtra) \
      and e.name:
    msg = f"{msg}; install it with: {install_hint(e.name)}"
  elif not isinstance(e, (*USAGE_ERRORS, MissingExtra)):
    msg = f"{type(e).__name__}: {msg}"
  msg = " ".join(msg.split("\n"))
  return f"lmdm {name}: error: {printable(msg, keep='')}"


def exit_code(e: BaseException) -> int:
  if isinstance(e, KeyboardInterrupt):
    return INTERRUPTED
  if isinstance(e, USAGE_ERRORS):
    return USAGE
  return RUNTIME


def run(fn: Callable, args, name: str, debug: bool = False) -> int:
  """fn(args) -> exit code, with the one error handler (module doc)."""
  try:
    rc = fn(args)
  except KeyboardInterrupt as e:      # also generate.Interrupted (SIGTERM)
    if debug:
      raise
    print(f"lmdm {name}: interrupted", file=sys.stderr, flush=True)
    return 128 + int(getattr(e, "signum", INTERRUPTED - 128))
  except SystemExit as e:
    if not isinstance(e.code, str):   # argparse, --help, sys.exit(n)
      raise
    # A command's own usage check (`raise SystemExit("message")`): the
    # same one line and exit 2 as a ValueError.
    msg = " ".join(e.code.removeprefix(f"lmdm {name}: ").splitlines())
    print(f"lmdm {name}: error: {printable(msg, keep='')}", file=sys.stderr,
          flush=True)
    return USAGE
  except Exception as e:          # noqa: BLE001  (the one handler)
    if debug:
      raise
    rc = exit_code(e)
    print(error_line(name, e) + (" (--debug shows the traceback)"
                                 if rc == RUNTIME else ""),
          file=sys.stderr, flush=True)
    return rc
  return 0 if rc is None else int(rc)
