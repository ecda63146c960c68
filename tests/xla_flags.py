"""XLA flags of the test run, in-process and in the tests' subprocesses.

The suite's time is mostly XLA:CPU compiling tiny programs: LLVM at -O0
without its expensive passes compiles them ~40 % faster (measured on
tests/train/test_arc.py's gradient test: 100 -> 56 CPU-seconds) while the
tiny models run at most ~15 % slower (the 300-block contract test). The
flags change only machine-code generation, not the HLO programs, their
buffer assignment (memory analyses) or the determinism of XLA:CPU, so
every equality a test asserts between two runs holds as before. Users get
XLA's defaults; only the tests set these.

Imports nothing: conftest reads it before JAX is imported.
"""
import os

COMPILE_FLAGS = ("--xla_backend_optimization_level=0 "
                 "--xla_llvm_disable_expensive_passes=true")


def with_devices(devices: int = 0) -> str:
  """XLA_FLAGS for a process: the compile flags, plus `devices` simulated
  host devices when > 0 (0: one device, as a user runs it)."""
  if devices:
    return f"{COMPILE_FLAGS} --xla_force_host_platform_device_count={devices}"
  return COMPILE_FLAGS


def subprocess_env(devices: int = 0, **extra) -> dict:
  """os.environ for a subprocess (`lmdm ...`, a notebook kernel) with the
  test run's XLA_FLAGS (one device unless `devices`) and `extra` set."""
  return dict(os.environ, XLA_FLAGS=with_devices(devices), **extra)
