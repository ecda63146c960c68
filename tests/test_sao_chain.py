"""Stage 1 and ARC-Forcing with SAO's own conditioning, and the whole chain.

On the toy SAO Small (tests/sao_fixture.py: stable-audio-tools key layout,
DiT + seconds_total + Oobleck, a tiny T5 with its sentencepiece model, every
parameter random) served to `lmdm fetch` from a local hub cache offline:

  - `lmdm data build --codec oobleck --codec-dir PKG` (batched windows of
    the VAE encoder; equal to the whole-file encode);
  - the training pipeline's conditioning (`--config.text.encoder=t5`):
    cross tokens = T5 tokens (padding zeroed) ++ seconds_total token, global
    = seconds_total, equal to what a stream feeds and to stable-audio-tools'
    MultiConditioner (parity in the reference venv); it reaches the model
    (different captions, different outputs; non-zero gradients on the
    cross-attention and global paths);
  - a T5 whose width is not the trained DiT's: one line naming the part;
  - the chain: fetch -> train 3 steps on a folder of WAVs with caption
    sidecars -> export -> generate -> live --simulate 5 s -> ARC-Forcing 2
    updates from the exported package (generating from the fetched package
    itself: tests/test_package.py).
"""
import json
import os
import wave

import numpy as np
import pytest

pytest.importorskip("sentencepiece")
pytest.importorskip("safetensors")

from lmdm_jax import package  # noqa: E402
from lmdm_jax.cli import main  # noqa: E402
from refenv import needs_refenv, run_reference  # noqa: E402
import sao_fixture  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "configs", "finetune.py") + ":bc,tiny"
ARC = os.path.join(ROOT, "configs", "arc_forcing.py") + ":bc,tiny"
CAPTIONS = ["ambient piano with pads", "fast drums and bass",
            "slow string choir", "ambient piano at 90 bpm"]


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
  """`lmdm fetch sao-small` of the toy hub, offline -> the package dir."""
  pytest.importorskip("huggingface_hub")
  work = tmp_path_factory.mktemp("chain")
  cache = sao_fixture.build_hub_cache(str(work / "cache"))
  out = work / "sao_small"
  old = os.environ.get("HF_HUB_OFFLINE")
  os.environ["HF_HUB_OFFLINE"] = "1"
  try:
    assert main(["fetch", "sao-small", "--out", str(out), "--cache-dir",
                 cache]) == 0
  finally:
    if old is None:
      del os.environ["HF_HUB_OFFLINE"]
    else:
      os.environ["HF_HUB_OFFLINE"] = old
  return str(out)


def _write_wav(path, audio, sr=44100):
  pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
  with wave.open(str(path), "wb") as w:
    w.setnchannels(audio.shape[0])
    w.setsampwidth(2)
    w.setframerate(sr)
    w.writeframes(pcm.T.tobytes())


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
  """Four 2.5 s stereo WAVs (sines and noise) with caption sidecars."""
  d = tmp_path_factory.mktemp("audio")
  rng = np.random.default_rng(0)
  t = np.arange(int(2.5 * 44100)) / 44100
  for i, cap in enumerate(CAPTIONS):
    tone = 0.3 * np.sin(2 * np.pi * (110 * (i + 1)) * t)
    noise = 0.05 * (i + 1) * rng.standard_normal((2, t.size))
    _write_wav(d / f"clip{i}.wav", tone[None] + noise)
    (d / f"clip{i}.txt").write_text(cap)
  return str(d)


@pytest.fixture(scope="module")
def dataset(fetched, audio_dir, tmp_path_factory):
  """`lmdm data build --codec oobleck --codec-dir PKG` of the folder."""
  pytest.importorskip("tensorflow_datasets")
  out = tmp_path_factory.mktemp("data") / "tfds"
  assert main(["data", "build", "--audio-dir", audio_dir, "--codec",
               "oobleck", "--codec-dir", fetched, "--out", str(out),
               "--min-frames", "24"]) == 0
  return str(out)


def _cfg(fetched, spec=TRAIN, **over):
  from lmdm_jax.configs import load_config, resolve_init_model
  cfg = load_config(spec)
  cfg.init.params, cfg.init.model, cfg.text.encoder = fetched, "package", \
      "t5"
  for k, v in over.items():
    node = cfg
    *path, leaf = k.split(".")
    for p in path:
      node = node[p]
    node[leaf] = v
  return resolve_init_model(cfg)


# -- data build ----------------------------------------------------------------
def test_batched_oobleck_encode_equals_the_whole_file(fetched):
  """Windows of chunk + 2 * encoder_radius frames, batched, give the
  whole-file encode (the margin is needed: a 2-frame one does not)."""
  from lmdm_jax.codecs import get_codec
  whole = package.load(fetched).make_codec()
  cfg, params = whole.config, whole.params
  batched = get_codec("oobleck", config=cfg, params=params, chunk=8,
                      batch=3)
  x = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 75 * 2048 + 99))
  x = x.astype(np.float32)
  a, b = whole.encode(x), batched.encode(x)
  assert a.shape == b.shape == (75, cfg.latent_dim)
  scale = np.abs(a).max()
  np.testing.assert_allclose(b, a, atol=1e-5 * scale)
  batched.margin = 2
  assert np.abs(batched.encode(x) - a).max() > 1e-3 * scale


def test_data_build_from_the_package_vae(dataset, fetched):
  from lmdm_jax.data.builders import open_dataset
  src = open_dataset(dataset)
  assert len(src) == len(CAPTIONS)
  caps = sorted(src[i]["caption"].decode() if isinstance(
      src[i]["caption"], bytes) else src[i]["caption"] for i in range(4))
  assert caps == sorted(CAPTIONS)
  z = np.asarray(src[0]["latents"])
  assert z.shape == (int(2.5 * 44100) // 2048, sao_fixture.LATENT)
  assert np.isfinite(z).all() and np.abs(z).max() > 0


# -- conditioning --------------------------------------------------------------
def test_pipeline_conditioning_is_the_stream_s_and_reaches_the_model(
    fetched, dataset):
  """Cross tokens = [T5(caption) | seconds_total token], global =
  seconds_total: each row equals what `text_encoder()` / `global_cond()`
  give a stream for that caption; two captions give different tokens and
  different velocities; one loss step sends non-zero gradients into every
  cross-attention layer, the conditioning projections and the global
  path."""
  import jax
  import jax.numpy as jnp
  from lmdm_jax.data.pipeline import make_pipeline
  from lmdm_jax.model.init import init_params
  from lmdm_jax.train import finetune
  from lmdm_jax.train.state import load_params_any, merge_params
  cfg = _cfg(fetched, **{"data.dir": dataset, "data.source": "tfds",
                         "data.prefetch": 0})
  pkg = package.load(fetched)
  pipe = make_pipeline(cfg)
  batch = next(pipe)
  pipe.close()
  assert batch["cross_tokens"].shape == (8, pkg.cond_tokens,
                                         pkg.dit.cond_token_dim)
  enc = pkg.text_encoder()
  from lmdm_jax.data.builders import open_dataset
  src = open_dataset(dataset)
  for row, rec in enumerate(batch["index"]):
    cap = src[int(rec)]["caption"]
    cap = cap.decode() if isinstance(cap, bytes) else cap
    np.testing.assert_allclose(batch["cross_tokens"][row],
                               enc.encode_one(cap), atol=1e-5)
    np.testing.assert_array_equal(batch["global_cond"][row],
                                  pkg.global_cond())
  assert np.abs(pkg.global_cond()).max() > 0
  caps = [src[int(r)]["caption"] for r in batch["index"]]
  i, j = next((a, b) for a in range(8) for b in range(8) if caps[a] !=
              caps[b])
  assert np.abs(batch["cross_tokens"][i, :-1] -
                batch["cross_tokens"][j, :-1]).max() > 1e-3
  # The model: stage 1's init from the package, one loss.
  spec = finetune.FinetuneSpec.from_config(cfg)
  params = merge_params(init_params(spec.model, jax.random.PRNGKey(0),
                                    cfg.cond_tokens),
                        load_params_any(fetched), log=lambda *a: None)
  keys = jax.random.split(jax.random.PRNGKey(1), 8)
  b = {k: jnp.asarray(v) for k, v in batch.items() if k != "index"}
  # Same draws, captions swapped between rows i and j: different outputs.
  d = jax.vmap(lambda k: finetune.draw(spec, k))(keys)
  d = dict(d, text=jnp.ones(8))
  swapped = dict(b, cross_tokens=b["cross_tokens"].at[i].set(
      b["cross_tokens"][j]))
  la = finetune.window_loss(params, spec, b, d)
  lb = finetune.window_loss(params, spec, swapped, d)
  assert abs(float(la[i]) - float(lb[i])) > 1e-7
  np.testing.assert_allclose(np.delete(np.asarray(la), i),
                             np.delete(np.asarray(lb), i), rtol=1e-6)
  grads = jax.grad(lambda p: finetune.window_loss(p, spec, b, d).mean())(
      params)
  flat = package.flatten(grads)
  cross = [k for k in flat if "cross" in k]
  for name in (["to_cond_embed_0/kernel", "to_cond_embed_2/kernel",
                "to_global_embed_0/kernel", "to_global_embed_2/kernel"] +
               cross):
    assert name in flat, sorted(flat)
    assert np.abs(flat[name]).max() > 0, name
  layers = {k.split("/")[1] for k in cross}
  assert len(layers) == pkg.dit.depth, cross


def test_t5_of_the_wrong_width_at_train_start_is_one_line(fetched, tmp_path,
                                                          capsys):
  """The tiny config's DiT takes 24-wide tokens; the package's T5 gives
  16: `lmdm train` says so in one line naming the part, exit 2, before
  any weight is read."""
  rc = main(["train", "--config", TRAIN, "--workdir", str(tmp_path / "w"),
             "--config.init.params=" + fetched, "--config.text.encoder=t5",
             "--config.data.source=synthetic", "--no-progress"])
  err = [e for e in capsys.readouterr().err.strip().splitlines()
         if not e.startswith("[")]
  assert rc == 2, err
  assert len(err) == 1, err
  assert "text encoder (t5): width 16 does not match the trained DiT's " \
      "cond_token_dim 24" in err[0]
  assert fetched in err[0]
  ckpt = tmp_path / "w" / "ckpt"
  assert not ckpt.exists() or not os.listdir(ckpt)        # nothing saved
  # t5 without a package to take it from.
  rc = main(["train", "--config", TRAIN, "--workdir", str(tmp_path / "w"),
             "--config.text.encoder=t5", "--config.data.source=synthetic"])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and "--config.init.params must be a package" in err[-1]


@needs_refenv
def test_assembly_matches_stable_audio_tools_multiconditioner(fetched,
                                                              tmp_path):
  """Our batched cross tokens and global vector for a batch of captions
  equal stable-audio-tools' MultiConditioner + ConditionedDiffusionModel-
  Wrapper.get_conditioning_inputs on the toy checkpoint (its T5 and
  seconds_total weights; T5 in float32, see tests/reference/
  sao_conditioner.py)."""
  import glob
  hub = os.path.dirname(fetched)
  sao = glob.glob(os.path.join(hub, "cache", "models--stabilityai--stable-"
                               "audio-open-small", "snapshots", "*"))[0]
  t5 = glob.glob(os.path.join(hub, "cache", "models--google-t5--t5-base",
                              "snapshots", "*"))[0]
  pkg = package.load(fetched)
  seconds = pkg.conditioning["stream_inputs"]["seconds_total"]
  work = tmp_path / "ref"
  work.mkdir()
  (work / "request.json").write_text(json.dumps({
      "sao_dir": sao, "t5_dir": t5, "captions": CAPTIONS,
      "seconds_total": seconds}))
  run_reference("sao_conditioner.py", str(work))
  ref = dict(np.load(work / "outputs.npz"))
  cond = pkg.batch_conditioning()
  cross = cond(CAPTIONS)
  glob_ = cond.global_cond(len(CAPTIONS))
  assert cross.shape == ref["cross"].shape
  np.testing.assert_array_equal(cross[:, :-1] == 0,
                                ref["cross"][:, :-1] == 0)  # padding
  np.testing.assert_allclose(cross, ref["cross"], atol=2e-5)
  np.testing.assert_allclose(glob_, ref["global"], atol=2e-5)
  # SAT runs T5 in float16: the same within half precision.
  np.testing.assert_allclose(cross, ref["cross_fp16"],
                             atol=2e-2 * np.abs(cross).max())


def test_player_ring_holds_the_oobleck_decoder_s_first_burst(fetched):
  """Blocks shorter than the exact decoder's radius (the chain's tiny
  geometry): its first output, all but `radius` of the first 2 * radius +
  1 frames, exceeds a block and used to overflow the ring buffer."""
  import dataclasses
  from lmdm_jax.live.player import Player
  pkg = package.load(fetched)
  pkg.geometry = dataclasses.replace(pkg.geometry, context=12, block=4,
                                     window_chunks=3)
  session = pkg.live_session(steps=1, seed=0)
  session.set_prompts({"slow string choir": 1.0})
  codec = pkg.make_codec()
  player = Player(session, codec, output=None)
  r = codec.stream_decoder().radius
  assert r > 4
  first = -(-(2 * r + 1) // 4)            # pushes before the first output
  player.start(prebuffer_blocks=first)    # no clock: nothing is read
  try:
    assert player.ring.size == (first * 4 - r) * codec.hop
  finally:
    player.stop()


# -- the whole chain -------------------------------------------------------------
def _wav(path):
  with wave.open(str(path)) as w:
    return w.getnchannels(), w.getframerate(), w.getnframes()


@pytest.mark.slow
def test_whole_chain(fetched, dataset, tmp_path, capsys):
  """fetch -> train 3 steps (T5 captions, seconds_total) -> export ->
  generate with the new package -> live --simulate 5 s -> ARC-Forcing 2
  updates from the exported package. (generate 10 s and live 5 s from the
  fetched package itself, the same toy: tests/test_package.py.)"""
  gen = ["--prompt", "ambient piano with pads", "--seconds", "4", "--steps",
         "2", "--no-progress"]
  pkg_over = ["--config.init.params=" + fetched, "--config.init.model=package",
              "--config.text.encoder=t5", "--config.data.dir=" + dataset,
              "--config.data.source=tfds"]
  work = str(tmp_path / "stage1")
  rc = main(["train", "--config", TRAIN, "--workdir", work, "--no-progress",
             "--config.train.steps=3"] + pkg_over)
  assert rc == 0, capsys.readouterr().err
  with open(os.path.join(work, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  assert [r["step"] for r in rows if "loss" in r][-1] == 3
  assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
  out = str(tmp_path / "tuned")
  assert main(["export", "--config", TRAIN, "--workdir", work, "--out", out,
               "--steps", "2"] + pkg_over) == 0, capsys.readouterr().err
  base, tuned = package.load(fetched), package.load(out)
  assert tuned.text == base.text and tuned.codec == base.codec
  assert tuned.conditioning == base.conditioning
  assert tuned.meta["step"] == 3 and tuned.meta["base"] == os.path.abspath(
      fetched)
  assert tuned.dit.postpend and not base.dit.postpend   # LMDM's token order
  assert (tuned.geometry.context, tuned.geometry.block) == (12, 4)
  capsys.readouterr()                         # 4-frame blocks: 22 blocks
  assert main(["generate", "--checkpoint", out, "--out",
               str(tmp_path / "tuned.wav")] + gen) == 0, \
      capsys.readouterr().err
  assert _wav(tmp_path / "tuned.wav") == (2, 44100, 4 * 44100)
  live = tmp_path / "live.wav"
  assert main(["live", "--checkpoint", out, "--prompt", "fast drums and bass",
               "--simulate", "--no-pace", "--seconds", "5", "--no-tui",
               "--steps", "2", "--steps-options", "2", "--out",
               str(live)]) == 0, \
      capsys.readouterr().err
  ch, sr, n = _wav(live)
  assert (ch, sr) == (2, 44100) and n >= 5 * 44100 - 2048
  # ARC-Forcing from the stage-1 package, with the same conditioning.
  arc = str(tmp_path / "arc")
  rc = main(["train", "--config", ARC, "--workdir", arc, "--no-progress",
             "--config.train.steps=2", "--config.init.params=" + out,
             "--config.init.model=package", "--config.text.encoder=t5",
             "--config.data.dir=" + dataset, "--config.data.source=tfds"])
  assert rc == 0, capsys.readouterr().err
  with open(os.path.join(arc, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  keys = set().union(*rows)
  assert any(k.startswith("g_") for k in keys) and any(
      k.startswith("d_") for k in keys), keys
  assert max(r.get("step", 0) for r in rows) == 2
