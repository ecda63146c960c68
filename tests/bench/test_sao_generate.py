"""`lmdm generate` split into T5, DiT and Oobleck decode
(lmdm_jax/bench/sao_generate.py), on the toy SAO Small fetched offline
from the hub fixture (tests/sao_fixture.py): every figure present, the
split adds up, the text encoder is T5 and the codec Oobleck."""
import json

import pytest

pytest.importorskip("sentencepiece")
pytest.importorskip("safetensors")
pytest.importorskip("huggingface_hub")

import sao_fixture  # noqa: E402
from lmdm_jax.bench import sao_generate  # noqa: E402
from lmdm_jax.fetch import fetch  # noqa: E402


@pytest.mark.slow
def test_generate_split_on_the_toy_sao_small(tmp_path):
  hub = sao_fixture.build_hub_cache(str(tmp_path / "hub"))
  pkg = str(tmp_path / "pkg")
  fetch("sao-small", pkg, cache_dir=hub, offline=True, log=lambda s: None)
  out = tmp_path / "gen.json"
  sao_generate.main(["--package", pkg, "--blocks", "2", "--steps", "2",
                     "--json", str(out)])
  r = json.loads(out.read_text())
  assert r["benchmark"] == "sao_generate" and r["codec"] == "oobleck"
  assert r["t5"]["encoder"] == "t5" and r["t5"]["prompts"] == len(
      sao_generate.PROMPTS)
  assert r["t5"]["tokens_shape"] == [sao_fixture.MAX_LENGTH + 1,
                                     sao_fixture.T5_WIDTH]
  assert r["blocks"] == 2 and r["steps"] == 2
  assert r["block_s"] == pytest.approx(48 * 2048 / 44100)
  for k in ("dit_s_per_block_median", "decode_s_per_block_median",
            "session_start_s"):
    assert r[k] > 0, k
  assert r["t5"]["per_prompt_s_median"] > 0
  assert r["real_time_factor"] == pytest.approx(
      r["block_s"] / r["total_s_per_block_median"])
  # total per block = DiT + decode, block by block (the medians of a
  # 2-block run: the means of the two).
  lat = r["latency_s"]
  assert lat["total"]["mean"] == pytest.approx(
      lat["model"]["mean"] + lat["decode"]["mean"], rel=1e-6)
  assert r["dit_params"] > 0 and r["geometry"]["block"] == 48
  with pytest.raises(ValueError, match="--blocks must be >= 2"):
    sao_generate.run(pkg, blocks=1)
