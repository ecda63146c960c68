"""Test setup: 8 simulated CPU devices (before JAX is imported anywhere),
the shared session fixtures, and the order xdist hands files out in.

Tiers (pytest.ini): `slow` marks real-time playback, subprocess CLI runs,
several processes, notebooks and long training. `pytest -m "not slow"
-n 2 --dist loadgroup` is the development command; `.ci/run` runs
everything on 2 workers.
"""
import os
import shutil
import sys
import tempfile

# Shared helpers (helpers.py, train_helpers.py, ...) live here; the tests
# in the sub-folders import them by name.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xla_flags import (COMPILE_FLAGS, KEEP_EVERY_COMPILE,  # noqa: E402
                       subprocess_env)

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# 8 simulated devices for the multi-device tests, and the tests' compile
# flags (tests/xla_flags.py: faster XLA:CPU compiles of tiny programs).
flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in flags:
  flags += " --xla_force_host_platform_device_count=8"
if "xla_backend_optimization_level" not in flags:
  flags += " " + COMPILE_FLAGS
os.environ["XLA_FLAGS"] = flags.strip()

# One persistent compilation cache for the whole run, shared by both xdist
# workers (they inherit the controller's environment) and every subprocess
# and notebook kernel they start: a program compiled once (the ARC steps, a
# training step, a model's stream) is read back from disk wherever the same
# program is compiled again, e.g. by a new `jax.jit` in another test or a
# restarted `lmdm train`. In-process, programs that took >= 1 s to compile
# are kept (JAX's default); `cli_env` keeps all. Entries are the compiled
# executables themselves (outputs, memory and cost analyses unchanged).
# Created empty per run (each run pays its cold compiles once) and removed
# at its end; a JAX_COMPILATION_CACHE_DIR set by the caller is used and kept.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = tempfile.mkdtemp(prefix="lmdm-test-jax-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
JAX_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"]

import jax  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_cfg():
  from lmdm_jax.configs import load_config
  return load_config(os.path.join(ROOT, "configs", "tiny.py"))


@pytest.fixture(scope="session")
def cli_env():
  """Environment of the tests' `lmdm` subprocesses: this checkout on
  PYTHONPATH, CPU, one device as a user runs it (no simulated devices; the
  tests' compile flags, tests/xla_flags.py), and
  the run's persistent compilation cache (JAX_CACHE), every program kept
  (a second run of the same model compiles in ~2 s instead of ~13 s; cached
  programs are the compiled ones, so outputs are unchanged)."""
  return subprocess_env(PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
                        JAX_COMPILATION_CACHE_DIR=JAX_CACHE,
                        **KEEP_EVERY_COMPILE)


@pytest.fixture(scope="session")
def smoke_package(tmp_path_factory):
  """Path of a random-weight model package at configs/demo.py:smoke size
  (tests/live_helpers.py), written once per session (per xdist worker) and
  only read by the tests (the live CLI, generate's argument checks)."""
  from live_helpers import make_smoke_package
  return make_smoke_package(str(tmp_path_factory.mktemp("smoke_pkg")))


@pytest.fixture(scope="session")
def tiny_bc_live(tiny_cfg):
  """(spec, params) of the tiny BC stream that the live tests drive: batch
  1, 2 steps, CFG branch on; parameters random (numpy, nothing compiled).
  Sessions of equal spec share compiled programs (`session.stream_for`),
  so every live test of a worker compiles this stream once."""
  from live_helpers import random_params
  from lmdm_jax.configs import dit_config, geometry
  from lmdm_jax.streaming.state import StreamSpec
  spec = StreamSpec(dit_config(tiny_cfg), geometry(tiny_cfg, "bc"), batch=1,
                    cond_tokens=tiny_cfg.cond_tokens, steps=2, cfg=True)
  return spec, random_params(tiny_cfg, seed=1)


# Session fixtures whose compiled programs several files reuse: the files
# that use one run on the same xdist worker.
SHARED_COMPILED_FIXTURES = ("tiny_bc_live",)

# The files holding most of the suite's worker time (idle CI run, 2
# workers), longest first. They are handed out first, so the long units
# start at once and the many short tests fill both workers at the end;
# neither worker ends on a long group while the other idles.
HEAVY_FIRST = (
    "tests/train/test_arc_train.py",              # one group
    "tests/bench/test_arc_memory.py",             # split
    "tests/train/test_train_resume.py",           # one group
    "tests/test_sao_chain.py",                    # the whole SAO chain
    "tests/test_colab_notebooks.py",              # split
    "tests/streaming/test_streaming_contract.py",
    "tests/bench/test_study.py",
    "tests/train/test_train_multiprocess.py",
    "tests/data/test_demo_pipeline.py",
    "tests/train/test_arc.py",
    "tests/bench/test_sao_generate.py",
    "tests/bench/test_train_memory.py",
)


@pytest.hookimpl(tryfirst=True)     # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
  """Order and groups for xdist (`.ci/run`: -n 2 --dist loadgroup
  --no-loadscope-reorder).

  Each file is one xdist group, so its module fixtures (a compiled session,
  a piped `lmdm live` run) are built on one worker only; the files using a
  fixture of SHARED_COMPILED_FIXTURES form one group, so that its programs
  are compiled once (`session.stream_for` caches them); a file that sets
  `XDIST_SPLIT_TESTS = True` (independent heavy tests, e.g. the notebooks)
  lets its tests go to either worker. Files holding `slow` tests run first
  (stable otherwise): the long units start at once and the many short ones
  fill both workers at the end; the HEAVY_FIRST files come before all
  others, longest first. Without xdist the marks do nothing."""
  slow_files = {item.path for item in items if item.get_closest_marker("slow")}
  heavy = {os.path.join(ROOT, f): i for i, f in enumerate(HEAVY_FIRST)}
  items.sort(key=lambda item: (heavy.get(str(item.path), len(heavy)),
                               item.path not in slow_files))
  shared = {item.path: name for item in items
            for name in SHARED_COMPILED_FIXTURES
            if name in getattr(item, "fixturenames", ())}
  for item in items:
    if getattr(getattr(item, "module", None), "XDIST_SPLIT_TESTS", False):
      continue
    item.add_marker(pytest.mark.xdist_group(
        shared.get(item.path, os.path.relpath(str(item.path), ROOT))))


def pytest_unconfigure(config):
  """The process that made the run's compilation cache removes it (the
  xdist controller, after its workers have ended)."""
  if _OWN_CACHE and not os.environ.get("PYTEST_XDIST_WORKER"):
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def pytest_report_header(config):
  return f"jax {jax.__version__}, devices: {jax.device_count()}"
