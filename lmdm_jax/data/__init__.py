"""Datasets of codec latents: building (TFDS) and reading (windows)."""
