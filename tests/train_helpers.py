"""Helpers of the training tests: tiny finetune configs and batches."""
from __future__ import annotations

import os

import numpy as np

from lmdm_jax.configs import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_finetune(mode: str = "bc", depth: int = 1):
  """configs/finetune_<mode>.py:tiny with a 1-layer DiT (fast compiles)."""
  cfg = load_config(os.path.join(ROOT, "configs", f"finetune.py:{mode},tiny"))
  cfg.model.depth = depth
  return cfg


def random_batch(cfg, batch: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  t = cfg.geometry.context + cfg.geometry.block
  m = cfg.model
  return {
      "latents": rng.normal(size=(batch, t, m.io_channels)).astype(
          np.float32),
      "cross_tokens": rng.normal(
          size=(batch, cfg.cond_tokens, m.cond_token_dim)).astype(np.float32),
      "global_cond": rng.normal(size=(batch, m.global_cond_dim)).astype(
          np.float32),
  }


def write_audio_folder(root: str, seconds: float = 0.5) -> dict:
  """A folder of good and bad audio files; returns {file: expected reason
  substring or None for files that must be kept}."""
  import soundfile as sf
  os.makedirs(root, exist_ok=True)
  rng = np.random.default_rng(0)
  t = np.arange(int(44100 * seconds)) / 44100

  def tone(f0, sr=44100, ch=2, secs=seconds):
    tt = np.arange(int(sr * secs)) / sr
    x = 0.3 * np.sin(2 * np.pi * f0 * tt)[:, None] * np.ones((1, ch))
    return (x + 0.01 * rng.normal(size=x.shape)).astype(np.float32)

  sf.write(os.path.join(root, "a_tone.wav"), tone(220), 44100)
  os.makedirs(os.path.join(root, "sub"), exist_ok=True)
  sf.write(os.path.join(root, "sub", "b_mono.flac"), tone(330, ch=1)[:, 0],
           44100)
  sf.write(os.path.join(root, "c_3ch_96k.wav"), tone(440, sr=96000, ch=3),
           96000, subtype="FLOAT")
  with open(os.path.join(root, "d_corrupt.wav"), "wb") as f:
    f.write(b"RIFF\x00\x10\x00\x00WAVEfmt " + rng.bytes(200))
  sf.write(os.path.join(root, "e_silent.wav"), np.zeros((len(t), 2)), 44100)
  nan = tone(550)
  nan[100, 0] = np.nan
  sf.write(os.path.join(root, "f_nan.wav"), nan, 44100, subtype="FLOAT")
  sf.write(os.path.join(root, "g_short.wav"), tone(660, secs=0.05), 44100)
  with open(os.path.join(root, "a_tone.txt"), "w") as f:
    f.write("a sidecar caption\n")
  return {"a_tone.wav": None, "sub/b_mono.flac": None,
          "c_3ch_96k.wav": None, "d_corrupt.wav": "unreadable",
          "e_silent.wav": "silent", "f_nan.wav": "non-finite",
          "g_short.wav": "too short"}
