"""Checkpoint import: stable-audio-tools (PyTorch) -> lmdm_jax params."""


def load_converted(directory):
  """(ConvertedConfig, params) from a `lmdm convert sao` directory."""
  from lmdm_jax.convert.sao import load_converted as _load
  return _load(directory)
