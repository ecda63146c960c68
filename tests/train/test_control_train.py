"""Control training: augmentation, the objective with controls, the data
pipeline's control crops, the sketch configs."""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmdm_jax.configs import load_config
from lmdm_jax.model import control_augment as augment
from lmdm_jax.model import control_inputs as ci
from lmdm_jax.data.pipeline import SyntheticSource, WindowPipeline
from lmdm_jax.model.init import init_params, randomize
from lmdm_jax.train import finetune, parallel
from lmdm_jax.train import state as train_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def np_median(x, k):
  """Reference: edge-padded running median of x [T, d] with odd k."""
  h = k // 2
  xp = np.pad(x, [(h, h), (0, 0)], mode="edge")
  return np.stack([np.median(xp[i:i + k], axis=0) for i in range(len(x))])


def test_median_filter_matches_numpy():
  x = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
  f = jax.jit(augment.median_filter, static_argnums=2)
  for k in (1, 3, 5, 9):
    np.testing.assert_allclose(f(jnp.asarray(x), k, 9), np_median(x, k),
                               rtol=0, atol=0)
  # A spike shorter than half the kernel is removed; a step is kept.
  step = np.r_[np.zeros(10), np.ones(10)][:, None].astype(np.float32)
  spiky = step.copy()
  spiky[4] = 9.0
  np.testing.assert_array_equal(f(jnp.asarray(spiky), 5, 9), step)


def test_augment_draws_and_apply():
  names = ["loudness", "pitch", "partner"]
  draws = jax.vmap(lambda k: augment.draw(k, names, 0.3, 0.5, 7))(
      jax.random.split(jax.random.PRNGKey(0), 4000))
  keep, kernel = np.asarray(draws["keep"]), np.asarray(draws["kernel"])
  assert abs(keep.mean() - 0.7) < 0.03
  assert set(np.unique(kernel)) == {1, 3, 5, 7}
  assert abs((kernel == 1).mean() - 0.5) < 0.03
  assert abs(np.corrcoef(keep[:, 0], keep[:, 1])[0, 1]) < 0.05  # independent
  rng = np.random.default_rng(1)
  v = rng.normal(size=(20, 2)).astype(np.float32)
  m = (rng.uniform(size=20) > 0.2).astype(np.float32)
  packed = jnp.asarray(ci.pack(v, m))
  # Dropped: exactly absent.
  np.testing.assert_array_equal(augment.apply(packed, 0.0, 5, 7), 0.0)
  # Kernel 1: unchanged.
  np.testing.assert_array_equal(augment.apply(packed, 1.0, 1, 7), packed)
  # Filtered: values median-filtered, mask by majority, values * mask.
  out = np.asarray(augment.apply(packed, 1.0, 5, 7))
  fm = (np_median(m[:, None], 5) >= 0.5).astype(np.float32)
  np.testing.assert_array_equal(out[:, -1:], fm)
  np.testing.assert_allclose(out[:, :-1], np_median(np.asarray(
      packed[:, :-1]), 5) * fm, atol=1e-6)
  # The partner's latents are never filtered, only dropped.
  ctl = {"partner": packed, "pitch": packed}
  res = augment.apply_all(ctl, names, {"keep": jnp.ones(3),
                                       "kernel": jnp.full(3, 5)}, 7)
  np.testing.assert_array_equal(res["partner"], packed)
  assert "loudness" not in res
  for bad in ((1.5, 0.5, 9), (0.5, -0.1, 9), (0.5, 0.5, 4)):
    with pytest.raises(ValueError):
      augment.check_params(*bad)


def sketch_tiny(arg="tiny_jam"):
  return load_config(os.path.join(ROOT, "configs",
                                  f"finetune_sketch.py:bc,{arg}"))


def test_objective_with_all_controls_dropped_is_the_base_objective():
  cfg = sketch_tiny()
  spec = finetune.FinetuneSpec.from_config(cfg)
  assert spec.model.control_dims == {"loudness": 1, "brightness": 1,
                                     "pitch": 1, "cqt_topk": 84,
                                     "partner": 8}
  src = SyntheticSource(4, 40, 8, controls=spec.model.control_dims)
  pipe = WindowPipeline(src, spec.geometry.window, 4, prefetch=0,
                        cond_shape=(cfg.cond_tokens, 24), global_dim=16,
                        controls=spec.model.control_dims)
  batch = pipe.batch(0)
  assert batch["control_cqt_topk"].shape == (4, 16, 85)
  assert batch["control_partner"].shape == (4, 16, 9)
  finetune.check_batch(spec, batch, cfg.cond_tokens)
  params = jax.jit(lambda k1, k2: randomize(
      init_params(spec.model, k1, cfg.cond_tokens), k2))(
          jax.random.PRNGKey(0), jax.random.PRNGKey(1))
  base_spec = dataclasses.replace(
      spec, model=dataclasses.replace(spec.model, controls=()))
  base_params = {k: v for k, v in params.items()
                 if not k.startswith("to_control")}
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  loss = jax.jit(lambda p, s, b: finetune.loss_fn(p, s, b, keys)[1],
                 static_argnums=1)
  base = loss(base_params, base_spec, batch)
  dropped = loss(params, dataclasses.replace(spec, control_dropout=1.0),
                 batch)
  np.testing.assert_array_equal(np.asarray(dropped), np.asarray(base))
  kept = loss(params, dataclasses.replace(spec, control_dropout=0.0),
              batch)
  assert np.abs(np.asarray(kept - base)).min() > 0
  # The draws of a model without controls are unchanged by the control ones.
  d0 = finetune.draw(base_spec, keys[0])
  d1 = finetune.draw(spec, keys[0])
  for k in d0:
    np.testing.assert_array_equal(d0[k], d1[k])
  with pytest.raises(ValueError, match="unknown batch controls"):
    finetune.check_batch(spec, {**batch, "control_timbre": batch[
        "control_pitch"]}, cfg.cond_tokens)
  with pytest.raises(ValueError, match="control_pitch|'pitch'"):
    finetune.check_batch(spec, {**batch, "control_pitch": batch[
        "control_cqt_topk"]}, cfg.cond_tokens)


def test_partner_dropout_is_separate_from_the_sketch_dropout():
  spec = finetune.FinetuneSpec.from_config(sketch_tiny())
  names = [n for n, _ in spec.model.controls]
  j = names.index("partner")
  keys = jax.random.split(jax.random.PRNGKey(5), 64)
  draw = jax.vmap(lambda k, s: finetune.draw(s, k)["control_keep"],
                  in_axes=(0, None))
  only_partner = np.asarray(jax.jit(draw, static_argnums=1)(
      keys, dataclasses.replace(spec, control_dropout=1.0,
                                partner_dropout=0.0)))
  assert only_partner[:, j].all()
  assert not np.delete(only_partner, j, axis=1).any()
  no_partner = np.asarray(jax.jit(draw, static_argnums=1)(
      keys, dataclasses.replace(spec, control_dropout=0.0,
                                partner_dropout=1.0)))
  assert not no_partner[:, j].any()
  assert np.delete(no_partner, j, axis=1).all()
  # Negative (the default): the partner follows control_dropout.
  same = np.asarray(jax.jit(draw, static_argnums=1)(
      keys, dataclasses.replace(spec, control_dropout=1.0)))
  assert not same.any()
  with pytest.raises(ValueError, match="partner_dropout"):
    dataclasses.replace(spec, partner_dropout=1.5)


def test_pipeline_crops_controls_with_the_latents():
  dims = {"loudness": 1, "partner": 3}

  class Source:
    def __init__(self):
      z = np.arange(30 * 3, dtype=np.float32).reshape(30, 3)
      self.items = [
          {"latents": z, "control_loudness": np.stack(
              [np.arange(30.0), np.ones(30)], 1).astype(np.float32),
           "partner_latents": -z},
          {"latents": z}]                 # no controls: absent

    def __len__(self):
      return len(self.items)

    def __getitem__(self, i):
      return self.items[i]

  pipe = WindowPipeline(Source(), 10, 2, prefetch=0, controls=dims)
  b = pipe.batch(0)
  for row, rec in enumerate(b["index"]):
    start = int(b["latents"][row, 0, 0]) // 3
    if rec == 0:
      np.testing.assert_array_equal(b["control_loudness"][row, :, 0],
                                    np.arange(start, start + 10))
      np.testing.assert_array_equal(b["control_partner"][row, :, :3],
                                    -b["latents"][row])
      np.testing.assert_array_equal(b["control_partner"][row, :, 3], 1.0)
    else:
      np.testing.assert_array_equal(b["control_loudness"][row], 0.0)
      np.testing.assert_array_equal(b["control_partner"][row], 0.0)
  # Without controls the batch is what it always was.
  plain = WindowPipeline(Source(), 10, 2, prefetch=0).batch(0)
  assert set(plain) == {"latents", "cross_tokens", "global_cond", "index"}
  bad = Source()
  bad.items[0]["control_loudness"] = np.zeros((30, 5), np.float32)
  with pytest.raises(ValueError, match="control 'loudness' has shape"):
    for i in range(4):
      WindowPipeline(bad, 10, 2, prefetch=0, controls=dims).batch(i)


def test_sketch_configs_load_and_one_train_step_runs():
  for name, arg in (("finetune_sketch.py", "ed"),
                    ("finetune_sketch.py", "bc,jam"),
                    ("sketch_demo.py", ""), ("sketch_demo.py", "smoke_jam")):
    path = os.path.join(ROOT, "configs", name)
    cfg = load_config(f"{path}:{arg}" if arg else path)
    spec = finetune.FinetuneSpec.from_config(cfg)
    assert "cqt_topk" in spec.model.control_dims
    assert ("partner" in spec.model.control_dims) == arg.endswith("jam")
  with pytest.raises(ValueError, match="variant"):
    load_config(os.path.join(ROOT, "configs", "sketch_demo.py:big"))
  cfg = sketch_tiny()
  spec = finetune.FinetuneSpec.from_config(cfg)
  tx = train_state.make_optimizer(cfg.optim)
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = parallel.put_replicated(
      train_state.init_state(cfg, tx, log=lambda *_: None), mesh)
  from lmdm_jax.data.pipeline import make_pipeline
  pipe = make_pipeline(cfg)
  batch = next(pipe)
  pipe.close()
  batch.pop("index")
  assert {f"control_{n}" for n in spec.model.control_dims} <= set(batch)
  step = parallel.make_train_step(spec, tx, mesh)
  state, metrics = step(state, parallel.put_batch(batch, mesh))
  assert np.isfinite(float(metrics["loss"]))
  # Zero-initialised projections get gradients from the controls.
  k = jax.device_get(state.params["to_control_embed_loudness"]["kernel"])
  assert np.abs(k).max() > 0


def test_data_build_stores_controls_and_the_pipeline_reads_them(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from lmdm_jax.data import builders
  from lmdm_jax.data.pipeline import tfds_source
  from train_helpers import write_audio_folder
  audio_dir, out = str(tmp_path / "audio"), str(tmp_path / "out")
  write_audio_folder(audio_dir)
  codec = dict(hop=512, latent_channels=8)      # pool codec, 86 frames/s
  # First without controls (an existing dataset), then with: the cached
  # encodings are reused and only the controls are computed.
  plain = builders.build(audio_dir, out, "pool", codec, min_frames=16,
                         log=lambda *a: None)
  assert plain["controls"] == {}
  src = tfds_source(out)
  assert not any(k.startswith("control_") for k in src[0])
  report = builders.build(audio_dir, out, "pool", codec,
                          min_frames=16, log=lambda *a: None,
                          controls=["loudness", "pitch"])
  assert report["controls"] == {"loudness": 1, "pitch": 1}
  assert report["reused_encodings"] == plain["files"]
  src = tfds_source(out)
  by_name = {src[i]["source"].decode() if isinstance(src[i]["source"], bytes)
             else src[i]["source"]: src[i] for i in range(len(src))}
  rec = by_name["a_tone.wav"]                     # 220 Hz, amplitude 0.3
  n = rec["latents"].shape[0]
  assert rec["control_loudness"].shape == (n, 2)
  assert rec["control_pitch"].shape == (n, 2)
  inner = slice(5, n - 5)
  np.testing.assert_allclose(rec["control_pitch"][inner, 0],
                             (57 - 60) / 24, atol=0.01)
  np.testing.assert_array_equal(rec["control_pitch"][inner, 1], 1.0)
  db = 30 * rec["control_loudness"][inner, 0] - 30
  np.testing.assert_allclose(db, 20 * np.log10(0.3) - 3.01, atol=0.3)
  with pytest.raises(ValueError, match="unknown audio control"):
    builders.build(audio_dir, out + "3", "pool", codec, min_frames=16,
                   log=lambda *a: None, controls=["timbre"])
  with pytest.raises(ValueError, match="pitch_method"):
    builders.build(audio_dir, out + "3", "pool", codec, min_frames=16,
                   log=lambda *a: None, controls=["pitch"],
                   pitch_method="crepe")
  # yin: its own cache files beside pyin's, the same note.
  yin = builders.build(audio_dir, out, "pool", codec, min_frames=16,
                       log=lambda *a: None, controls=["loudness", "pitch"],
                       pitch_method="yin")
  assert yin["reused_encodings"] == plain["files"]
  rec_yin = [tfds_source(out)[i] for i in range(len(src))
             if "a_tone" in str(tfds_source(out)[i]["source"])][0]
  np.testing.assert_allclose(rec_yin["control_pitch"][inner, 0],
                             (57 - 60) / 24, atol=0.01)
  cached = os.listdir(os.path.join(out, "lmdm_latents_encoded"))
  # pool frames cover [j*hop, (j+1)*hop): the codec's frame centre is named
  assert any(f.endswith("pitch.centre0.5.yin.npz") for f in cached)
  assert any(f.endswith("pitch.centre0.5.npz") for f in cached)
  pipe = WindowPipeline(src, 16, 3, prefetch=0,
                        controls={"loudness": 1, "pitch": 1, "partner": 8})
  b = pipe.batch(0)
  assert b["control_pitch"].shape == (3, 16, 2)
  np.testing.assert_array_equal(b["control_partner"], 0.0)   # no stems
  assert b["control_loudness"][:, :, 1].all()


def test_data_build_stems_writes_accompaniment_records(tmp_path):
  """--stems: per part k of a mix, latents = the other parts, partner = part
  k (the pool codec is linear, so the two sum to the mix's latents); silent
  parts are skipped with their reason; mix records keep their controls and
  have no partner, part records have the partner and no sketch controls."""
  pytest.importorskip("tensorflow_datasets")
  import soundfile as sf
  from lmdm_jax.data import builders
  from lmdm_jax.data.pipeline import tfds_source
  sr, n = 44100, 44100 * 2
  t = np.arange(n) / sr
  parts = [0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 330.0)]
  parts.append(np.zeros(n))                        # a part that never plays
  audio_dir, stems = tmp_path / "audio", tmp_path / "parts"
  (stems / "trio").mkdir(parents=True)
  audio_dir.mkdir()
  for k, p in enumerate(parts):
    sf.write(str(stems / "trio" / f"part{k:02d}.wav"),
             np.stack([p, p], 1), sr, subtype="FLOAT")
  mix = np.sum(parts, axis=0)
  sf.write(str(audio_dir / "trio.wav"), np.stack([mix, mix], 1), sr,
           subtype="FLOAT")
  sf.write(str(audio_dir / "solo.wav"), np.stack([parts[0]] * 2, 1), sr,
           subtype="FLOAT")
  codec = dict(hop=512, latent_channels=8)
  out = str(tmp_path / "out")
  with pytest.raises(ValueError, match="not a directory"):
    builders.build(str(audio_dir), out, "pool", codec, min_frames=16,
                   stems_dir=str(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match="no file .* has stems"):
    builders.build(str(audio_dir), out, "pool", codec, min_frames=16,
                   stems=True)                     # no demo-layout stems
  report = builders.build(str(audio_dir), out, "pool", codec, min_frames=16,
                          controls=["loudness"], stems_dir=str(stems))
  assert report["controls"] == {"loudness": 1, "partner": 8}
  assert report["examples"] == 4 and report["part_records"] == 2
  assert [s["reason"] for s in report["skipped"]] == ["silent part"]
  src = tfds_source(out)
  recs = {str(src[i]["source"], "utf-8") if isinstance(src[i]["source"],
                                                       bytes)
          else src[i]["source"]: src[i] for i in range(len(src))}
  assert set(recs) == {"solo.wav", "trio.wav", "trio.wav#part00",
                       "trio.wav#part01"}
  full = recs["trio.wav"]
  np.testing.assert_array_equal(full["control_partner"], 0.0)
  assert full["control_loudness"][:, 1].all()
  for k in (0, 1):
    r = recs[f"trio.wav#part{k:02d}"]
    assert r["control_partner"][:, -1].all()
    np.testing.assert_array_equal(r["control_loudness"], 0.0)
    np.testing.assert_allclose(r["latents"] + r["control_partner"][:, :-1],
                               full["latents"], atol=1e-5)
  # Part 0 alone is the solo file; its accompaniment is part 1.
  np.testing.assert_allclose(recs["trio.wav#part00"]["control_partner"][:, :-1],
                             recs["solo.wav"]["latents"], atol=1e-5)
  # A re-run reuses the part encodings (cached by the stems' identity).
  again = builders.build(str(audio_dir), out, "pool", codec, min_frames=16,
                         controls=["loudness"], stems_dir=str(stems))
  assert again["part_records"] == 2 and again["reused_encodings"] == 2
  pipe = WindowPipeline(src, 16, 4, prefetch=0,
                        controls={"loudness": 1, "partner": 8})
  b = pipe.batch(0)
  assert b["control_partner"].shape == (4, 16, 9)
  one = builders.build(str(audio_dir), out, "pool", codec, min_frames=16,
                       controls=["loudness"], stems_dir=str(stems),
                       parts_per_file=1)
  assert one["part_records"] == 1 and one["examples"] == 3
  # A corrupt stem skips that file's parts (its mix stays), with the reason.
  (stems / "solo").mkdir()
  (stems / "solo" / "part00.wav").write_bytes(b"RIFF....not audio")
  sf.write(str(stems / "solo" / "part01.wav"), np.stack([parts[1]] * 2, 1),
           sr, subtype="FLOAT")
  bad = builders.build(str(audio_dir), out, "pool", codec, min_frames=16,
                       controls=["loudness"], stems_dir=str(stems))
  assert bad["part_records"] == 2 and bad["examples"] == 4
  assert any(s["file"] == "solo.wav" and "part00.wav unreadable" in
             s["reason"] for s in bad["skipped"])


@pytest.mark.slow
def test_data_build_workers_write_the_same_dataset(tmp_path):
  """--workers N encodes in N spawned processes: the dataset (every record,
  in order), its part records, skips and controls are those of a
  one-process build; bad worker counts are refused before any work."""
  pytest.importorskip("tensorflow_datasets")
  import soundfile as sf
  from lmdm_jax.data import builders
  from lmdm_jax.data.pipeline import tfds_source
  sr, n = 44100, 44100 * 2
  t = np.arange(n) / sr
  audio_dir, stems = tmp_path / "audio", tmp_path / "parts"
  audio_dir.mkdir()
  for i, base in enumerate((220.0, 247.0, 262.0, 294.0, 330.0)):
    parts = [0.2 * np.sin(2 * np.pi * base * r * t) for r in (1.0, 1.5)]
    (stems / f"piece{i}").mkdir(parents=True)
    for k, p in enumerate(parts):
      sf.write(str(stems / f"piece{i}" / f"part{k:02d}.wav"),
               np.stack([p, p], 1), sr, subtype="FLOAT")
    mix = np.sum(parts, axis=0)
    sf.write(str(audio_dir / f"piece{i}.wav"), np.stack([mix, mix], 1), sr,
             subtype="FLOAT")
  (audio_dir / "broken.wav").write_bytes(b"RIFF....not audio")
  codec = dict(hop=512, latent_channels=8)
  kw = dict(min_frames=16, controls=["loudness"], stems_dir=str(stems),
            parts_per_file=1)
  for bad, match in ((0, "workers must be >= 1"),):
    with pytest.raises(ValueError, match=match):
      builders.build(str(audio_dir), str(tmp_path / "x"), "pool", codec,
                     workers=bad, **kw)
  with pytest.raises(ValueError, match="numpy codecs"):
    builders.build(str(audio_dir), str(tmp_path / "x"), "oobleck", {},
                   workers=2, **kw)
  one = builders.build(str(audio_dir), str(tmp_path / "one"), "pool", codec,
                       **kw)
  two = builders.build(str(audio_dir), str(tmp_path / "two"), "pool", codec,
                       workers=2, **kw)
  for k in ("examples", "part_records", "frames", "controls"):
    assert one[k] == two[k], k
  assert one["examples"] == 10 and one["part_records"] == 5
  assert [s["file"] for s in one["skipped"]] == ["broken.wav"]
  assert one["skipped"] == two["skipped"]
  a, b = tfds_source(str(tmp_path / "one")), tfds_source(str(tmp_path / "two"))
  assert len(a) == len(b) == 10
  for i in range(len(a)):
    assert set(a[i]) == set(b[i])
    for key in a[i]:
      np.testing.assert_array_equal(np.asarray(a[i][key]),
                                    np.asarray(b[i][key]), err_msg=key)
  # A re-run with workers reuses every encoding the first one cached.
  again = builders.build(str(audio_dir), str(tmp_path / "two"), "pool",
                         codec, workers=2, **kw)
  assert again["reused_encodings"] == 6 and again["examples"] == 10
