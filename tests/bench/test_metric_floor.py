"""benchmarks/metric_floor.py scores raw clips against inaudible changes of
themselves. On a clean melody of harmonic tones (one voice, exactly
periodic notes) every change must keep the pitch and the onsets: what the
benchmark finds on mixes is then the mixes' tracker instability, not the
script's alignment or scaling."""
import json

import numpy as np
import pytest

from helpers import load_benchmark

NOTES = (57, 60, 64, 62, 65, 69, 67, 64, 60, 62)   # MIDI, 0.5 s each


def _melody(sr, n):
  t = np.arange(n) / sr
  x = np.zeros(n)
  for i in range(n // (sr // 2)):
    f = 440.0 * 2 ** ((NOTES[i % len(NOTES)] - 69) / 12)
    seg = slice(i * (sr // 2), (i + 1) * (sr // 2))
    env = np.minimum(1.0, (t[seg] - t[seg][0]) / 0.01) * np.exp(
        -3 * (t[seg] - t[seg][0]))
    x[seg] = env * sum(np.sin(2 * np.pi * f * h * t[seg]) / h
                       for h in range(1, 6))
  return 0.3 * x / np.max(np.abs(x))


@pytest.mark.slow
def test_a_clean_melody_keeps_pitch_and_onsets_under_every_change(tmp_path):
  sf = pytest.importorskip("soundfile")
  sr = 44100
  audio = tmp_path / "audio"
  audio.mkdir()
  x = _melody(sr, sr * 10)                  # crops start 5 s in
  sf.write(str(audio / "melody.wav"), np.stack([x, x], 1), sr)
  out = tmp_path / "floor.json"
  assert load_benchmark("metric_floor").main(
      ["--audio", str(audio), "--clips", "1", "--seconds", "5",
       "--pitch-methods", "yin", "--json", str(out)]) == 0
  r = json.loads(out.read_text())
  rows = r["rows"]
  assert r["clips"] == 1 and len(rows) == 6
  for name, row in rows.items():
    assert row["pitch_accuracy_yin"] > 0.9, (name, row)
    if not name.startswith("round trip"):  # (its double onsets on clean
      assert row["onset_f1"] > 0.9, (name, row)  # notes: codecs doc)
  # The changes a listener cannot hear keep the tracker's answer on a
  # single clean voice (on mixes they do not: docs/codecs_and_import.md).
  for name in ("shifted 256 samples", "white noise 40 dB down",
               "all-pass at 300 Hz (phase only)"):
    assert rows[name]["pitch_accuracy_yin"] > 0.95, (name, rows[name])
    assert rows[name]["onset_f1"] > 0.9, (name, rows[name])
