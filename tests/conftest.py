"""Test setup: 8 simulated CPU devices (before JAX is imported anywhere)."""
import os
import sys

# Shared helpers (helpers.py, train_helpers.py, ...) live here; the tests
# in the sub-folders import them by name.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("JAX_PLATFORMS", "cpu")
flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in flags:
  os.environ["XLA_FLAGS"] = (
      flags + " --xla_force_host_platform_device_count=8").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_cfg():
  from lmdm_jax.configs import load_config
  return load_config(os.path.join(ROOT, "configs", "tiny.py"))


def pytest_report_header(config):
  return f"jax {jax.__version__}, devices: {jax.device_count()}"
