"""Checkpoint import: stable-audio-tools (PyTorch) -> lmdm_jax params."""


def load_converted(directory):
  """(ConvertedConfig, params) from a directory written by `lmdm convert sao`."""
  from lmdm_jax.convert.sao import load_converted as _load
  return _load(directory)
