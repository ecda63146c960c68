"""One model package for every model; `lmdm package` and `lmdm fetch`.

The SAO chain runs offline on a toy Stable Audio Open Small (stable-audio-
tools key layout, DiT + number conditioner + Oobleck VAE, a tiny T5 with
its sentencepiece model; every parameter random: tests/sao_fixture.py)
served to `lmdm fetch` from a local hub cache with the hub offline:
fetch -> package -> `lmdm generate` 10 s -> `lmdm live --simulate` 5 s.
Bad inputs (a missing component, a T5 of the wrong width, a VAE whose
latent size differs from the DiT's, a hub repo without access) each give
one line naming the part, exit code 2 and nothing that loads as a package.
"""
import glob
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import wave

import numpy as np
import pytest

pytest.importorskip("sentencepiece")
pytest.importorskip("safetensors")

from lmdm_jax import package, pretrained  # noqa: E402
from lmdm_jax.cli import main  # noqa: E402
import sao_fixture  # noqa: E402
from helpers import no_leftovers  # noqa: E402

SAO = "stabilityai/stable-audio-open-small"
T5 = "google-t5/t5-base"


def _fetch(out, cache, *extra):
  return main(["fetch", "sao-small", "--out", str(out), "--cache-dir",
               str(cache), *extra])


def _error_line(capsys, rc):
  """stderr of a failed command: exactly one line, returned."""
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2, err
  lines = [e for e in err if not e.startswith("[")]     # progress lines
  assert len(lines) == 1, lines
  return lines[0]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
  """The toy SAO Small + T5 in a hub cache."""
  pytest.importorskip("huggingface_hub")
  cache = tmp_path_factory.mktemp("hub") / "cache"
  return sao_fixture.build_hub_cache(str(cache))


@pytest.fixture(scope="module")
def fetched(hub, tmp_path_factory):
  """`lmdm fetch sao-small` against the offline hub -> the package dir."""
  out = tmp_path_factory.mktemp("fetched") / "sao_small"
  os.environ["HF_HUB_OFFLINE"] = "1"
  try:
    assert _fetch(out, hub) == 0
  finally:
    del os.environ["HF_HUB_OFFLINE"]
  return str(out)


# -- the SAO chain ---------------------------------------------------------------
def test_fetch_writes_one_package_and_skips_when_up_to_date(fetched, hub,
                                                            capsys,
                                                            monkeypatch):
  pkg = package.load(fetched)
  assert pkg.text["encoder"] == "t5" and pkg.codec["name"] == "oobleck"
  assert pkg.cond_tokens == sao_fixture.MAX_LENGTH + 1
  assert pkg.conditioning["cross_ids"] == ["prompt", "seconds_total"]
  assert pkg.conditioning["global_ids"] == ["seconds_total"]
  # What a stream feeds as seconds_total: the model's window (sample_size).
  assert pkg.conditioning["stream_inputs"]["seconds_total"] == \
      pytest.approx(524288 / 44100)
  for rel in package.required_files(package.read_manifest(fetched)):
    assert os.path.isfile(os.path.join(fetched, rel)), rel
  with open(os.path.join(fetched, "model.json")) as f:
    fetched_from = json.load(f)["meta"]["fetched"]
  assert sorted(fetched_from) == sorted([SAO, T5])
  before = os.stat(os.path.join(fetched, "params.npz")).st_mtime_ns
  capsys.readouterr()
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  assert _fetch(fetched, hub) == 0
  captured = capsys.readouterr()
  assert "up to date" in captured.err
  assert json.loads(captured.out)["up_to_date"] is True
  assert os.stat(os.path.join(fetched, "params.npz")).st_mtime_ns == before
  no_leftovers(os.path.dirname(fetched), "sao_small")


def test_package_loader_imports_no_converter(fetched):
  """Loading and using a package (T5, conditioners, Oobleck) never imports
  lmdm_jax.convert."""
  code = (
      "import sys; from lmdm_jax import pretrained; "
      f"p = pretrained.load({fetched!r}); "
      "t = p.text_encoder().encode_one('ambient piano'); "
      "g = p.global_cond(); c = p.make_codec(); "
      "c.decode(t[:2, :c.latent_channels]); "
      "bad = [m for m in sys.modules if m.startswith('lmdm_jax.convert')]; "
      "assert not bad, bad; print('ok', t.shape, g.shape)")
  env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                     text=True, env=env, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "ok (9, 16) (16,)" in r.stdout


def test_conditioning_is_sao_assembly_and_prompts_differ(fetched, hub,
                                                         tmp_path):
  """Cross tokens = [T5 tokens (padding zeroed) | seconds_total token],
  global = the seconds_total embedding; both equal what the converters'
  own T5 encoder and conditioners give; two prompts give different cross
  tokens and different music."""
  import jax
  import jax.numpy as jnp
  from lmdm_jax.conditioners import build_conditioners
  from lmdm_jax.convert import load_converted
  from lmdm_jax.convert.sao import convert_sao
  from lmdm_jax.convert.t5 import T5TextEncoder, convert_t5
  pkg = package.load(fetched)
  enc = pkg.text_encoder()
  a = enc.encode_one("ambient piano with pads")
  b = enc.encode_one("fast drums and bass")
  assert a.shape == (pkg.cond_tokens, pkg.dit.cond_token_dim)
  assert np.abs(a[:-1] - b[:-1]).max() > 1e-3
  np.testing.assert_array_equal(a[-1], b[-1])            # seconds_total
  # The converters' path, computed independently.
  snap = glob.glob(os.path.join(hub, "models--google-t5--t5-base",
                                "snapshots", "*"))[0]
  convert_t5(snap, str(tmp_path / "t5"))
  t5, mask = T5TextEncoder(str(tmp_path / "t5"),
                           max_length=sao_fixture.MAX_LENGTH)(
                               ["ambient piano with pads"])
  np.testing.assert_allclose(a[:-1], np.asarray(t5[0]), atol=1e-6)
  assert (a[:-1][~mask[0]] == 0).all()
  sao = glob.glob(os.path.join(hub, "models--" + SAO.replace("/", "--"),
                               "snapshots", "*"))[0]
  convert_sao(os.path.join(sao, "model.safetensors"),
              os.path.join(sao, "model_config.json"), str(tmp_path / "dit"))
  cfg, params = load_converted(str(tmp_path / "dit"))
  conds = build_conditioners(cfg.conditioners, ["seconds_total"],
                             ["seconds_total"])
  cross, _, glob_ = conds.apply(
      {"params": params["conditioners"]},
      {"seconds_total": jnp.asarray([524288 / 44100])})
  np.testing.assert_allclose(a[-1], np.asarray(cross[0, 0]), atol=1e-6)
  np.testing.assert_allclose(pkg.global_cond(), np.asarray(glob_[0]),
                             atol=1e-6)
  # Different prompts, same seed: different blocks.
  session = pkg.live_session(steps=2, seed=3)
  assert not session.spec.cfg and session.spec.cond_tokens == 9
  np.testing.assert_array_equal(session.global_cond, pkg.global_cond())
  state = jax.tree.map(jnp.copy, session.state)
  session.set_prompts({"ambient piano with pads": 1.0})
  x = session.next_block()
  session.state = state
  session.set_prompts({"fast drums and bass": 1.0})
  y = session.next_block()
  assert np.isfinite(x).all() and np.abs(x - y).max() > 1e-3


def _wav(path):
  with wave.open(str(path)) as w:
    return w.getnchannels(), w.getframerate(), w.getnframes()


def test_generate_10s_and_live_5s_from_the_fetched_package(fetched, tmp_path,
                                                            capsys):
  out = tmp_path / "gen.wav"
  rc = main(["generate", "--checkpoint", fetched, "--prompt",
             "ambient piano with pads", "--seconds", "10", "--steps", "2",
             "--out", str(out), "--json", str(tmp_path / "gen.json"),
             "--no-progress"])
  assert rc == 0, capsys.readouterr().err
  assert _wav(out) == (2, 44100, 441000)
  fig = json.loads((tmp_path / "gen.json").read_text())
  assert fig["blocks"] == 5 and fig["rms_dbfs"] > -60
  live = tmp_path / "live.wav"
  rc = main(["live", "--checkpoint", fetched, "--prompt",
             "fast drums and bass", "--simulate", "--no-pace", "--seconds",
             "5", "--no-tui", "--steps", "2", "--steps-options", "2",
             "--out", str(live), "--json", str(tmp_path / "live.json")])
  assert rc == 0, capsys.readouterr().err
  ch, sr, n = _wav(live)
  assert (ch, sr) == (2, 44100) and n >= 5 * 44100 - 2048
  fig = json.loads((tmp_path / "live.json").read_text())
  assert fig["output"] == "simulated" and fig["blocks"] >= 1


def test_serve_plays_the_fetched_package_with_its_conditioning(fetched):
  """`lmdm serve` on a converted SAO package: the stream gets the
  package's seconds_total embedding as global conditioning (not zeros)
  and its output stage, and plays blocks."""
  import serve_helpers as sh
  from lmdm_jax.serve.engine import build
  pkg = pretrained.load(fetched)
  want = pkg.global_cond()
  assert want is not None and np.abs(want).max() > 0
  engine = build(sh.serve_args(fetched, prompt="ambient piano with pads"),
                 lambda s: None)
  np.testing.assert_array_equal(engine.session.global_cond, want)
  assert engine.player.output is not None
  engine.start()
  try:
    end = time.time() + 120
    while engine.next_block() < 2 and time.time() < end:
      time.sleep(0.05)
    assert engine.next_block() >= 2
  finally:
    stats = engine.stop()
  assert stats["rejected_blocks"] == 0 and stats["callbacks"] > 0
  second = engine.another()
  np.testing.assert_array_equal(second.session.global_cond, want)


# -- bad inputs -------------------------------------------------------------------
def test_missing_component_is_named(fetched, tmp_path, capsys):
  broken = tmp_path / "broken"
  shutil.copytree(fetched, broken)
  os.remove(broken / "codec" / "params.npz")
  rc = main(["generate", "--checkpoint", str(broken), "--prompt", "x",
             "--seconds", "1", "--out", str(tmp_path / "x.wav"),
             "--no-progress"])
  line = _error_line(capsys, rc)
  assert "codec (oobleck VAE): codec/params.npz is missing" in line
  assert not os.path.exists(tmp_path / "x.wav")
  os.remove(broken / "text" / "spiece.model")
  with pytest.raises(package.PackageError, match="tokenizer"):
    package.load(str(broken))


@pytest.fixture(scope="module")
def parts(hub, tmp_path_factory):
  """The toy's converted parts (lmdm convert sao / oobleck / t5)."""
  from lmdm_jax.convert.oobleck import convert_oobleck
  from lmdm_jax.convert.sao import convert_sao
  from lmdm_jax.convert.t5 import convert_t5
  work = tmp_path_factory.mktemp("parts")
  sao = glob.glob(os.path.join(hub, "models--" + SAO.replace("/", "--"),
                               "snapshots", "*"))[0]
  t5 = glob.glob(os.path.join(hub, "models--google-t5--t5-base",
                              "snapshots", "*"))[0]
  ckpt, cfg = (os.path.join(sao, "model.safetensors"),
               os.path.join(sao, "model_config.json"))
  convert_sao(ckpt, cfg, str(work / "dit"))
  convert_oobleck(ckpt, cfg, str(work / "vae"))
  convert_t5(t5, str(work / "t5"))
  return work


def _bad_t5(work):
  """A tiny T5 of width 24 (the DiT's cond_token_dim is 16)."""
  from safetensors.numpy import save_file
  from lmdm_jax.convert.t5 import convert_t5
  hf = work / "hf_t5_24"
  hf.mkdir()
  t5 = sao_fixture.t5_config(24)
  (hf / "config.json").write_text(json.dumps(t5))
  save_file(sao_fixture.t5_state_dict(t5), str(hf / "model.safetensors"))
  shutil.copy(work / "t5" / "spiece.model", hf / "spiece.model")
  convert_t5(str(hf), str(work / "t5_24"))
  return str(work / "t5_24")


def _bad_vae(work):
  """An Oobleck VAE with 4 latent channels (the DiT's io_channels: 8)."""
  from safetensors.numpy import save_file
  from lmdm_jax.convert.oobleck import convert_oobleck
  cfg = sao_fixture.model_config(latent=4)
  (work / "vae4.json").write_text(json.dumps(cfg))
  sd = {k: v for k, v in sao_fixture.sao_state_dict(cfg).items()
        if k.startswith("pretransform.")}
  save_file(sd, str(work / "vae4.safetensors"))
  convert_oobleck(str(work / "vae4.safetensors"), str(work / "vae4.json"),
                  str(work / "vae4"))
  return str(work / "vae4")


def test_package_command_and_width_mismatches(parts, tmp_path, capsys):
  good = tmp_path / "good"
  rc = main(["package", "--dit", str(parts / "dit"), "--t5-dir",
             str(parts / "t5"), "--vae-dir", str(parts / "vae"), "--out",
             str(good), "--context", "96", "--block", "24"])
  assert rc == 0, capsys.readouterr().err
  pkg = package.load(str(good))
  assert (pkg.geometry.context, pkg.geometry.block) == (96, 24)
  capsys.readouterr()
  for t5_dir, vae_dir, want in (
      (_bad_t5(parts), str(parts / "vae"),
       "text encoder (t5) ({}): width 24 does not match the DiT's "
       "cond_token_dim 16"),
      (str(parts / "t5"), _bad_vae(parts),
       "codec (oobleck VAE) ({}): latent size 4 does not match the DiT's "
       "io_channels 8")):
    out = tmp_path / "bad"
    rc = main(["package", "--dit", str(parts / "dit"), "--t5-dir", t5_dir,
               "--vae-dir", vae_dir, "--out", str(out)])
    line = _error_line(capsys, rc)
    assert want.format(t5_dir if "t5_24" in t5_dir else vae_dir) in line
    assert not os.path.exists(out)
    no_leftovers(tmp_path, "bad")
  rc = main(["package", "--dit", str(parts / "dit"), "--t5-dir",
             str(parts / "t5"), "--vae-dir", str(parts / "vae"), "--out",
             str(tmp_path / "bad"), "--context", "100"])
  assert "geometry: bc mode needs the block size to divide the context" in \
      _error_line(capsys, rc)
  assert not os.path.exists(tmp_path / "bad")
  # A converted part is not a package, and says what to do.
  with pytest.raises(package.PackageError, match="lmdm package"):
    pretrained.load(str(parts / "dit"))


class _Denied(http.server.BaseHTTPRequestHandler):
  """A hub endpoint that refuses every file: 403 gated, or 401."""
  gated = True

  def _deny(self):
    if self.gated:
      self.send_response(403)
      self.send_header("X-Error-Code", "GatedRepo")
      self.send_header("X-Error-Message", "Access to model "
                       f"{SAO} is restricted.")
    else:
      self.send_response(401)
      self.send_header("X-Error-Message", "Invalid credentials")
    self.send_header("Content-Length", "0")
    self.end_headers()

  do_HEAD = do_GET = _deny

  def log_message(self, *args):
    pass


@pytest.mark.parametrize("gated", [True, False])
def test_hub_repo_without_access_is_one_line(gated, tmp_path, capsys,
                                             monkeypatch):
  hub = pytest.importorskip("huggingface_hub")
  # The hub reads HF_HUB_OFFLINE at import (another test may have set it).
  monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)
  handler = type("Handler", (_Denied,), {"gated": gated})
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:"
                       f"{server.server_address[1]}")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    out = tmp_path / "pkg"
    rc = _fetch(out, tmp_path / "cache", "--token", "hf_test")
  finally:
    server.shutdown()
  line = _error_line(capsys, rc)
  assert SAO in line and "request" in line and "access" in line
  if gated:
    assert "gated" in line
  assert not os.path.exists(out)
  no_leftovers(tmp_path, "pkg")


def test_export_of_a_t5_run_keeps_the_base_packages_parts(fetched, tmp_path):
  """What `lmdm export` writes for a run fine-tuned from a converted
  package: new DiT params, the base's T5, Oobleck and conditioners."""
  import dataclasses
  import ml_collections
  from lmdm_jax.train.export import base_package
  pkg = package.load(fetched)
  cfg = ml_collections.ConfigDict({
      "model": dataclasses.asdict(pkg.dit),
      "geometry": dataclasses.asdict(pkg.geometry),
      "cond_tokens": pkg.cond_tokens, "frame_rate": pkg.frame_rate,
      "init": {"params": fetched}, "text": {"encoder": "t5"},
      "codec": {"name": "oobleck"}})
  assert base_package(cfg) == fetched
  assert base_package(cfg, "other") == "other"
  # Weights-free parts (e.g. a sketch model fine-tuned from the shipped
  # demo package): the run's own text spec and codec, not the init's.
  for codec in ("mel", "semitone", "pool"):
    hashed = cfg.copy_and_resolve_references()
    hashed.text.encoder, hashed.codec.name = "hashed_words", codec
    assert base_package(hashed) is None, codec
  # Captions off and the config's default codec: still the init's parts.
  plain = cfg.copy_and_resolve_references()
  plain.text.encoder, plain.codec.name = "", "mel"
  assert base_package(plain) == fetched
  rng = np.random.default_rng(0)
  import jax
  tuned = jax.tree.map(lambda a: np.asarray(a) + 0.01 * rng.standard_normal(
      a.shape).astype(np.float32), pkg.params["dit"])
  out = tmp_path / "tuned"
  package.save(str(out), dit_params=tuned, cfg=cfg,
               text={"encoder": "t5"}, codec={"name": "oobleck"},
               defaults={"steps": 4, "cfg_scale": 1.0}, meta={"step": 3},
               base=base_package(cfg))
  new = package.load(str(out))
  assert new.text == pkg.text and new.codec == pkg.codec
  assert new.conditioning == pkg.conditioning and new.meta["base"]
  np.testing.assert_array_equal(
      new.text_encoder().encode_one("ambient piano"),
      pkg.text_encoder().encode_one("ambient piano"))
  flat_new, flat_tuned = package.flatten(new.params["dit"]), \
      package.flatten(tuned)
  for k, v in flat_tuned.items():
    np.testing.assert_array_equal(flat_new[k], v)
  # A run whose token count does not fit the base's conditioning.
  bad = cfg.copy_and_resolve_references()
  bad.cond_tokens = 5
  with pytest.raises(package.PackageError, match="cross tokens add up"):
    package.save(str(tmp_path / "bad"), dit_params=tuned, cfg=bad,
                 text={}, codec={}, defaults={}, meta={}, base=fetched)
  assert not os.path.exists(tmp_path / "bad")


def test_player_decodes_oobleck_exactly_block_by_block(fetched):
  """A package's Oobleck codec plays through its exact streaming decoder:
  the blocks' audio equals the whole stream decoded at once."""
  from lmdm_jax.live.player import Player
  pkg = package.load(fetched)
  session = pkg.live_session(steps=2, seed=1)
  session.set_prompts({"slow string choir": 1.0})
  codec = pkg.make_codec()
  audio = Player(session, codec, output=None).render(blocks=3)
  whole = codec.decode(session.performance()[0])
  assert audio.shape == whole.shape == (2, 3 * pkg.geometry.block * 2048)
  assert np.abs(whole).max() > 1e-3
  np.testing.assert_allclose(audio, whole, atol=1e-5 * np.abs(whole).max())


def test_training_init_reads_packages_and_converted_dirs(fetched, parts):
  """cfg.init.params may name a package or a `lmdm convert sao` dir."""
  from lmdm_jax.train.state import load_params_any
  from_pkg = package.flatten(load_params_any(fetched))
  from_dir = package.flatten(load_params_any(str(parts / "dit")))
  # The package adds a zero input-add layer (to play a base SAO DiT); a run
  # initialised from it starts that layer fresh, as from the checkpoint.
  pkg = package.load(fetched)
  assert not np.asarray(pkg.params["dit"]["to_input_add_embed"][
      "kernel"]).any()
  assert sorted(from_pkg) == sorted(from_dir)
  for k, v in from_dir.items():
    np.testing.assert_array_equal(from_pkg[k], v)


def test_only_fetch_reaches_the_network():
  """No module but lmdm_jax/fetch.py imports an HTTP client (servers that
  listen on a local port are not clients and are not looked for)."""
  import re
  root = os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), "lmdm_jax")
  pattern = re.compile(r"^\s*(import|from)\s+(huggingface_hub|requests|"
                       r"urllib\.request|http\.client|httpx)\b", re.M)
  found = []
  for dirpath, _, files in os.walk(root):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(dirpath, f)
        with open(path) as fh:
          if pattern.search(fh.read()):
            found.append(os.path.relpath(path, root))
  assert found == ["fetch.py"], found
