"""Periodic audio samples during training."""
import os
import wave

from lmdm_jax.train import loop
from train_helpers import tiny_finetune


def test_training_writes_periodic_wav_samples(tmp_path):
  cfg = tiny_finetune("bc")
  cfg.mesh.devices = 1
  cfg.train.steps = 4
  cfg.samples.update(every_steps=2, blocks=2, steps=2, codec="pool")
  logs = []
  loop.train(cfg, str(tmp_path), log=logs.append, progress=False)
  for step in (2, 4):
    path = os.path.join(tmp_path, "samples", f"step_{step}.wav")
    with wave.open(path) as w:
      assert w.getnchannels() == 2 and w.getframerate() == 44100
      # 2 blocks of 4 frames, hop 2048.
      assert w.getnframes() == 2 * 4 * 2048
  assert sum("sample:" in m for m in logs) == 2
