"""The demo data recipe on one tiny score: music21 -> MIDI (one channel and
program per part) -> fluidsynth -> FLAC + caption, split by piece, resume."""
import dataclasses
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("music21")
pytest.importorskip("mido")
from lmdm_jax.data import demo  # noqa: E402
from lmdm_jax.data import midi_render  # noqa: E402

needs_synth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not midi_render.find_soundfonts(),
    reason="needs Debian's fluidsynth and a GM soundfont (`bash "
           ".ci/install_debian.sh` installs them)")


def test_split_is_by_piece_and_stable():
  a = [demo.split_of(f"bach/bwv{i}.mxl", 0.1) for i in range(400)]
  assert a == [demo.split_of(f"bach/bwv{i}.mxl", 0.1) for i in range(400)]
  frac = np.mean([s == "heldout" for s in a])
  assert 0.05 < frac < 0.16                    # ~10 % held out
  assert demo.split_of("x", 0.0) == "train"
  assert demo.tempo_word(60) == "slow" and demo.tempo_word(90) == \
      "moderate" and demo.tempo_word(140) == "fast"


def test_plan_is_deterministic_and_variants_share_the_split(tmp_path):
  fonts = ["/a.sf2", "/b.sf2"]
  g = dataclasses.replace(demo.RECIPE[0], max_pieces=12, variants=2)
  p1 = demo.plan(str(tmp_path), [g], seed=3, soundfonts=fonts)
  p2 = demo.plan(str(tmp_path), [g], seed=3, soundfonts=fonts)
  assert [dataclasses.astuple(j)[1:] for j in p1] == \
      [dataclasses.astuple(j)[1:] for j in p2]
  assert len(p1) == 24
  by_piece = {}
  for j in p1:
    by_piece.setdefault(j.piece, set()).add(
        "heldout" if "/heldout/" in j.out_path else "train")
  assert all(len(s) == 1 for s in by_piece.values())   # never split a piece
  assert all(j.ensemble in demo.ENSEMBLES for j in p1)


def test_plan_draws_between_the_recipe_fonts_whatever_else_is_installed(
    tmp_path):
  g = dataclasses.replace(demo.RECIPE[0], max_pieces=40, variants=1)
  both = tmp_path / "both"
  both.mkdir()
  for n in demo.RECIPE_SOUNDFONTS:
    (both / n).write_bytes(b"sf")
  paths, substituted = demo.recipe_soundfonts([str(both)])
  assert [os.path.basename(p) for p in paths] == \
      list(demo.RECIPE_SOUNDFONTS) and substituted == {}
  # With exactly the recipe's fonts installed the draw is the one the
  # shipped data was rendered with (over the sorted installed list).
  old = demo.plan(str(tmp_path), [g], soundfonts=midi_render.find_soundfonts(
      [str(both)]))
  new = demo.plan(str(tmp_path), [g], soundfonts=paths)
  assert [j.soundfont for j in old] == [j.soundfont for j in new]
  assert len({j.soundfont for j in new}) == 2
  # Another font installed beside them changes nothing.
  (both / "AAA_Extra.sf2").write_bytes(b"sf")
  (both / "default-GM.sf2").symlink_to(both / "TimGM6mb.sf2")
  more, _ = demo.recipe_soundfonts([str(both)])
  assert more == paths
  assert [j.soundfont for j in demo.plan(str(tmp_path), [g],
                                          soundfonts=more)] == \
      [j.soundfont for j in new]
  # A missing recipe font is replaced by an installed one, and reported.
  one = tmp_path / "one"
  one.mkdir()
  (one / "TimGM6mb.sf2").write_bytes(b"sf")
  (one / "Other.sf2").write_bytes(b"sf")
  paths, substituted = demo.recipe_soundfonts([str(one)])
  assert substituted == {"FluidR3_GM.sf2": "TimGM6mb.sf2"}
  assert {os.path.basename(p) for p in paths} == {"TimGM6mb.sf2"}
  with pytest.raises(FileNotFoundError, match="no GM soundfont"):
    demo.recipe_soundfonts([str(tmp_path / "none")])


def test_retime_midi_gives_each_part_a_channel_and_program(tmp_path):
  import mido
  from music21 import corpus
  raw, out = str(tmp_path / "raw.mid"), str(tmp_path / "out.mid")
  corpus.parse("bach/bwv66.6").write("midi", fp=raw)
  n = midi_render.retime_midi(raw, out, (40, 41), bpm=90, max_seconds=5.0)
  assert n == 4
  mid = mido.MidiFile(out)
  progs = {}
  for track in mid.tracks:
    for m in track:
      if m.type == "program_change":
        progs[m.channel] = m.program
      if m.type in ("note_on", "note_off"):
        assert m.channel in progs                  # programmed channel
  assert sorted(progs) == [0, 1, 2, 3] and 9 not in progs
  assert [progs[c] for c in range(4)] == [40, 41, 40, 41]
  tempos = [m.tempo for t in mid.tracks for m in t if m.type == "set_tempo"]
  assert tempos == [mido.bpm2tempo(90)]
  # Cut at 5 s, and every note that sounds is released.
  assert mid.length <= 5.0 + 1e-3            # tempo is whole microseconds
  for track in mid.tracks:
    on = set()
    for m in track:
      if m.type == "note_on" and m.velocity:
        on.add(m.note)
      elif m.type in ("note_on", "note_off"):
        on.discard(m.note)
    assert not on


@needs_synth
@pytest.mark.slow
def test_render_one_score_with_caption_and_resume(tmp_path):
  import soundfile as sf
  g = dataclasses.replace(demo.RECIPE[0], max_pieces=1)
  job = demo.Job(g, "bach/bwv66.6", 0, "church organ", 66,
                 midi_render.find_soundfonts()[0],
                 str(tmp_path / "audio/train/bach/bwv66_6__0.flac"), 6.0)
  meta = demo.render_job(job)
  assert "error" not in meta, meta
  x, sr = sf.read(job.out_path)
  assert sr == 44100 and x.ndim == 2 and x.shape[1] == 2
  assert 5.0 < x.shape[0] / sr < 12.0           # cut at 6 s plus release
  assert 0.05 < np.abs(x).max() <= 0.9          # not silent, not clipped
  cap = open(job.out_path[:-5] + ".txt").read().strip()
  assert cap == ("slow Bach chorale in F sharp minor for church organ, "
                 "66 bpm, rendered MIDI")
  mtime = os.path.getmtime(job.out_path)
  again = demo.render_job(job)                   # resumes: no re-render
  assert again["caption"] == cap and os.path.getmtime(job.out_path) == mtime


def test_render_failure_is_reported_not_raised(tmp_path):
  g = dataclasses.replace(demo.RECIPE[0], min_parts=5, max_parts=5)
  job = demo.Job(g, "bach/bwv66.6", 0, "choir", 80, "/no/font.sf2",
                 str(tmp_path / "x.flac"), 5.0)
  meta = demo.render_job(job)
  assert "parts outside" in meta["error"]
  assert not os.path.exists(job.out_path)


@needs_synth
@pytest.mark.slow
def test_render_with_stems_sums_to_the_mix(tmp_path):
  """Each part rendered alone (jamming data): one stem per part, each
  audible, different from the others, and summing to the mix."""
  import soundfile as sf
  g = dataclasses.replace(demo.RECIPE[0], max_pieces=1)
  out = tmp_path / "audio/train/bach/bwv66_6__0.flac"
  job = demo.Job(g, "bach/bwv66.6", 0, "string quartet", 80,
                 midi_render.find_soundfonts()[0], str(out), 5.0, stems=True)
  meta = demo.render_job(job)
  assert "error" not in meta, meta
  assert len(meta["stems"]) == meta["parts"] == 4
  assert demo.stems_dir(str(out)) == str(tmp_path / "stems/train/bach/"
                                          "bwv66_6__0")
  mix, _ = sf.read(job.out_path)
  stems = [sf.read(p)[0] for p in meta["stems"]]
  for s in stems:
    assert s.shape == mix.shape and np.abs(s).max() > 0.01
  assert not np.allclose(stems[0], stems[1], atol=1e-3)
  np.testing.assert_allclose(np.sum(stems, axis=0), mix, atol=2e-4)
  # A run without stems already on disk is re-rendered when stems are asked.
  plain = dataclasses.replace(job, out_path=str(tmp_path / "p/audio/x.flac"),
                              stems=False)
  assert "stems" not in demo.render_job(plain)
  assert demo.render_job(dataclasses.replace(plain, stems=True))["stems"]
