"""benchmarks/semitone_bands.py splices raw audio and the semitone round
trip at the codec's band edges; on music whose bass sits below C2 the
splices must say so: taking the raw sub-bass away costs the chord tone,
putting it back restores it, and the splices are not swapped."""
import json

import numpy as np
import pytest

from helpers import load_benchmark


def _load():
  return load_benchmark("semitone_bands")


def _tone(f, sr, n, harmonics=6):
  t = np.arange(n) / sr
  return sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, harmonics
                                                             + 1))


@pytest.mark.slow
def test_the_sub_bass_splice_finds_a_root_below_c2(tmp_path):
  sf = pytest.importorskip("soundfile")
  sr, n = 44100, 44100 * 11          # crops start 5 s in
  audio = tmp_path / "audio"
  audio.mkdir()
  # A strong root in the sub band (A1 55 Hz) under a quiet C#-E above: the
  # mix's strongest pitch class is A only while the sub-bass is there.
  for i, (root, third, fifth) in enumerate([(55.0, 277.18, 329.63),
                                             (49.0, 246.94, 293.66)]):
    x = (1.0 * _tone(root, sr, n, harmonics=1) + 0.15 * _tone(third, sr, n)
         + 0.15 * _tone(fifth, sr, n))
    x = 0.3 * x / np.max(np.abs(x))
    sf.write(str(audio / f"clip{i}.wav"), np.stack([x, x], 1), sr)
  out = tmp_path / "bands.json"
  assert _load().main(["--audio", str(audio), "--clips", "2", "--seconds",
                       "5", "--json", str(out)]) == 0
  r = json.loads(out.read_text())
  rows = r["rows"]
  assert r["clips"] == 2 and len(rows) == 9
  ct = {k: v["chord_tone"] for k, v in rows.items()}
  raw = r["chord_tone_raw"]
  assert raw > 0.9
  # Raw without its sub band loses the root; the round trip loses it too,
  # and gets it back when the raw sub band is spliced under it.
  assert ct["raw above 63.6 Hz"] < raw - 0.3
  assert ct["round trip"] < raw - 0.3
  assert ct["raw below 63.6 Hz + round trip above"] > ct["round trip"] + 0.3
  assert ct["round trip below 63.6 Hz + raw above"] < raw - 0.3
