"""`lmdm bench codec --compare`: the round-trip measures and the table."""
import numpy as np

from lmdm_jax.bench import codec as B
from lmdm_jax.codecs import get_codec

SR = 44100


def _chord(seconds=3.0):
  t = np.arange(int(seconds * SR)) / SR
  x = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0))
  x = 0.1 * x * np.exp(-2 * (t % 0.75))
  return np.stack([x, 0.7 * x]).astype(np.float32)


def test_distances_and_mono_loss():
  x = _chord()
  assert B.mrstft_distance(x, x) == 0.0
  n = np.random.default_rng(0).normal(scale=0.1, size=(2, SR)).astype(
      np.float32)
  assert abs(B.mrstft_distance(n, 0.5 * n) - 6.02) < 0.05   # 6 dB everywhere
  assert abs(B.mono_loss_db(np.stack([x[0], x[0]]))) < 1e-9
  assert B.mono_loss_db(np.stack([x[0], -x[0]])) > 100  # anti-phase


def test_compare_ranks_semitone_above_mel_on_a_chord():
  clips = [("a", _chord()), ("b", _chord()[:, ::-1].copy())]
  codecs = {"mel": get_codec("mel", iters=4), "semitone": get_codec("semitone")}
  r = B.compare(codecs, {"set": clips}, fd=False)
  row = r["sets"]["set"]
  assert row["clips"] == 2 and row["raw"]["chord_tone_raw"] > 0.9
  assert row["semitone"]["chord_tone"] > row["mel"]["chord_tone"]
  assert row["semitone"]["mono_loss_db"] < 3.0
  assert set(r["speed"]) == {"mel", "semitone"}
  r["codecs"] = list(codecs)
  table = B.compare_table(r)
  assert "| set | `mel`" not in table and "| set | semitone |" in table


def test_variants_compare_under_their_own_labels(tmp_path, capsys):
  import json
  import pytest
  sf = pytest.importorskip("soundfile")
  from lmdm_jax.bench.cli import parse_variant
  from lmdm_jax.cli import main
  assert parse_variant('low=semitone:{"midi_lo": 33}') == (
      "low", "semitone", {"midi_lo": 33})
  for bad in ("semitone:{}", "x=semitone", "x=semitone:{nope",
              "x=semitone:[1]"):
    with pytest.raises(SystemExit):
      parse_variant(bad)
  assert main(["bench", "codec", "--variant", 'x=semitone:{}']) == 2
  assert "goes with --compare" in capsys.readouterr().err
  d = tmp_path / "audio"
  d.mkdir()
  x = np.concatenate([_chord(4.0)] * 2, axis=1)
  sf.write(str(d / "a.wav"), x.T, SR)
  out = tmp_path / "r.json"
  rc = main(["bench", "codec", "--compare", "semitone", "--variant",
             'low=semitone:{"midi_lo": 33, "semitones": 55, "high_bands": 4,'
             ' "resolutions": [[33, 8192], [48, 4096], [72, 2048]]}',
             "--heldout", str(d), "--clips", "1", "--clip-seconds", "2",
             "--no-fd", "--json", str(out)])
  assert rc == 0, capsys.readouterr().err
  r = json.loads(out.read_text())
  assert r["codecs"] == ["semitone", "low"]
  assert r["variants"]["low"]["kwargs"]["midi_lo"] == 33
  row = r["sets"]["heldout"]
  assert row["low"]["chord_tone"] > 0.5 and row["semitone"]["chord_tone"] > 0.5
  # The variant is a different codec: its round trip differs.
  assert row["low"]["mrstft_db"] != row["semitone"]["mrstft_db"]
