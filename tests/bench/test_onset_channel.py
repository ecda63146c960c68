"""benchmarks/onset_channel.py: the onset-channel statistics are those of
encoded audio where they must be (every mark passes the gate, no value near
the threshold), a layout without the channel gives none, and a run on the
shipped demo model (onset layout) reports both sides."""
import numpy as np
import pytest
import soundfile as sf

from helpers import load_benchmark

SR = 44100


def _notes(seconds=3.0, starts=(0.3, 0.9, 1.6, 2.2)):
  t = np.arange(int(seconds * SR)) / SR
  x = np.zeros_like(t)
  for i, s0 in enumerate(starts):
    env = np.clip((t - s0) / 0.002, 0, 1) * np.exp(-4 * np.clip(t - s0, 0,
                                                                None))
    x += 0.2 * env * np.sin(2 * np.pi * 220 * 2 ** (i / 12) * t)
  return np.stack([x, x]).astype(np.float32)


def test_encoded_audio_has_clean_marks_and_other_layouts_none():
  from lmdm_jax.codecs import get_codec
  from lmdm_jax.codecs.semitone import ONSET_LAYOUT, SUB_PITCH_LAYOUT
  oc = load_benchmark("onset_channel")
  codec = get_codec("semitone", **ONSET_LAYOUT)
  st = oc.channel_stats(codec, codec.encode(_notes()))
  assert st["marks_with_rise"] == 1.0 and st["near_threshold"] == 0.0
  assert 4 / 3 <= st["marks_per_s"] < 3.0
  assert oc.channel_stats(get_codec("semitone", **SUB_PITCH_LAYOUT),
                          np.zeros((8, 64), np.float32)) == {}
  # A model that put its marks at 0.1 (just over the threshold) and where
  # nothing rises: counted as near the threshold and without a rise.
  z = codec.encode(_notes())
  z[:, codec.onset_index] = 0.1
  z[:, :60] = 0.0
  st = oc.channel_stats(codec, z)
  assert st["near_threshold"] == 1.0 and st["marks_with_rise"] == 0.0


def test_missing_heldout_is_refused(tmp_path):
  oc = load_benchmark("onset_channel")
  with pytest.raises(FileNotFoundError, match="no audio"):
    oc.run("lmdm_jax/assets/demo", str(tmp_path), 1, 2.0)


@pytest.mark.slow
def test_a_run_on_the_shipped_demo(tmp_path):
  import os
  repo = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  oc = load_benchmark("onset_channel")
  held = tmp_path / "held"
  held.mkdir()
  x = np.concatenate([_notes(), _notes()], 1)
  sf.write(held / "a.flac", np.tile(x, (1, 3)).T, SR)   # 18 s (crops skip 5)
  out = oc.run(os.path.join(repo, "lmdm_jax/assets/demo"), str(held), 1,
               2.3, prompts=("slow Bach chorale",), workdir=str(tmp_path))
  gen, raw = out["generated"][0], out["raw"][0]
  assert set(gen) >= {"marks_per_s", "marks_with_rise", "near_threshold",
                      "audio_onsets_per_s"}
  assert raw["marks_with_rise"] == 1.0 and raw["audio_onsets_per_s"] > 0
  assert out["mean"]["marks_per_s"]["raw"] == raw["marks_per_s"]
