"""XLA flags of the test run, in-process and in the tests' subprocesses.

The suite's time is mostly XLA:CPU compiling tiny programs. Three flags
cut it (all CPU-seconds, measured side by side on this 2-core VM):
LLVM at -O0 without its expensive passes compiles ~40 % faster (the ARC
gradient test in tests/train/test_arc.py: 100 -> 56 CPU-s) while the tiny
models run at most ~15 % slower (the 300-block contract test); XLA:CPU's
older IR emitters instead of its MLIR fusion emitters compile the ARC
generator and discriminator steps in ~37 % less CPU time again (55 ->
35 CPU-s, tests/train/test_arc_train.py's models, two runs each). They
change machine-code generation only, not the HLO programs, their buffer
assignment (memory analyses) or the determinism of XLA:CPU, so every
equality a test asserts between two runs holds as before. Users get XLA's
defaults; only the tests set these.

XLA aborts a process on a flag it does not know, and flags come and go
between releases: the first process of a run checks them once in a
subprocess (~2 s), falls back to the subset this jaxlib accepts, and
leaves the answer in LMDM_TEST_COMPILE_FLAGS for every process it starts.

Imports nothing from JAX: conftest reads it before JAX is imported.
"""
import os
import subprocess
import sys

_WANTED = ("--xla_backend_optimization_level=0 "
           "--xla_llvm_disable_expensive_passes=true "
           "--xla_cpu_use_fusion_emitters=false")
_FALLBACK = ("--xla_backend_optimization_level=0 "
             "--xla_llvm_disable_expensive_passes=true")
_ENV = "LMDM_TEST_COMPILE_FLAGS"


def _accepted(flags: str) -> bool:
  """Whether a fresh process starts XLA:CPU and runs a jit with `flags`."""
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  code = "import jax; jax.jit(lambda x: x + 1)(1.0).block_until_ready()"
  try:
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, timeout=120).returncode == 0
  except (OSError, subprocess.SubprocessError):
    return False


def _compile_flags() -> str:
  if _ENV not in os.environ:
    os.environ[_ENV] = next(
        (f for f in (_WANTED, _FALLBACK) if _accepted(f)), "")
  return os.environ[_ENV]


COMPILE_FLAGS = _compile_flags()

# Environment that keeps every program a process compiles in the run's
# persistent compilation cache (JAX keeps only those that took >= 1 s by
# default): for the tests' subprocesses and notebook kernels, which compile
# what another process of the run often compiled already.
KEEP_EVERY_COMPILE = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                      "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


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
