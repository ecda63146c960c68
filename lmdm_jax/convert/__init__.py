"""Checkpoint import: stable-audio-tools (PyTorch) -> lmdm_jax params."""
