"""T5 encoder + tokenizer: parity with transformers, converter, SAO padding."""
import json
import os
import shutil

import numpy as np
import pytest

from lmdm_jax.convert.state_dict import ConversionError
from lmdm_jax.convert.t5 import T5TextEncoder, convert_state_dict, convert_t5
from lmdm_jax.text.t5 import T5Config, relative_buckets
from refenv import needs_refenv, run_reference

TINY = dict(vocab_size=80, d_model=32, d_kv=8, d_ff=48, num_layers=2,
            num_heads=4, relative_attention_num_buckets=8,
            relative_attention_max_distance=16, feed_forward_proj="relu")
TEXTS = ["ambient piano with soft pads", "fast drum and bass 174 bpm",
         "a long prompt " * 10]
CORPUS = [f"{a} {b} at {n} bpm with {c}" for n in range(60, 180, 7)
          for a, b, c in [("ambient", "piano", "pads"),
                          ("fast", "drums", "bass"),
                          ("a", "long", "prompt")]]


def _spm(workdir):
  spm = pytest.importorskip("sentencepiece")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(CORPUS), model_prefix=f"{workdir}/spiece",
      vocab_size=60, model_type="unigram", pad_id=0, eos_id=1, unk_id=2,
      bos_id=-1, hard_vocab_limit=False, minloglevel=2)
  return f"{workdir}/spiece.model"


def test_tokenizer_follows_sao_padding(tmp_path):
  from lmdm_jax.text.tokenizer import T5Tokenizer
  tok = T5Tokenizer(_spm(tmp_path), max_length=40)
  ids, mask = tok(TEXTS)
  assert ids.shape == mask.shape == (3, 40) and ids.dtype == np.int32
  n0 = len(tok.sp.encode(TEXTS[0]))
  assert mask[0].sum() == n0 + 1 and ids[0, n0] == 1        # </s>
  assert (ids[0, n0 + 1:] == 0).all() and not mask[0, n0 + 1:].any()
  assert mask[2].all() and ids[2, -1] == 1                   # truncated
  with pytest.raises(ValueError, match="list of texts"):
    tok("one string")
  with pytest.raises(FileNotFoundError):
    T5Tokenizer(str(tmp_path / "nope.model"))


def test_relative_buckets_small_offsets_exact():
  b = relative_buckets(5, 5, 32, 128)
  # Offsets below 8 map to themselves (keys after the query: +16).
  assert b[4, 0] == 4 and b[0, 4] == 16 + 4 and b[2, 2] == 0
  far = relative_buckets(1, 400, 32, 128)
  assert far.max() == 31 and far[0, 200] == far[0, 399] == 31


@needs_refenv
def test_t5_parity_with_transformers(tmp_path):
  work = str(tmp_path)
  spm_file = _spm(work)
  with open(f"{work}/t5_config.json", "w") as f:
    json.dump(TINY, f)
  from lmdm_jax.text.tokenizer import T5Tokenizer
  ids, mask = T5Tokenizer(spm_file, max_length=40)(TEXTS)
  np.savez(f"{work}/inputs.npz", ids=ids, mask=mask)
  run_reference("t5.py", work)
  ref = dict(np.load(f"{work}/outputs.npz"))
  shutil.copy(spm_file, f"{work}/hf/spiece.model")
  out = convert_t5(f"{work}/hf", f"{work}/t5")
  assert out["tokenizer"] and out["t5"]["d_model"] == 32
  enc = T5TextEncoder(f"{work}/t5", max_length=40)
  emb, m = enc(TEXTS)
  np.testing.assert_array_equal(m, mask)
  want = ref["hidden"] * mask[..., None]           # SAO zeroes padding
  assert want.std() > 0.1
  err = np.abs(np.asarray(emb) - want).max()
  print(f"T5 max abs err {err:.3g}, std {want.std():.3g}")
  assert err <= 1e-4, err


def test_t5_converter_is_strict():
  cfg = T5Config(**TINY)
  with pytest.raises(ConversionError) as e:
    convert_state_dict({"shared.weight": np.zeros((80, 32), np.float32),
                        "encoder.block.0.layer.0.SelfAttention.q.weight":
                            np.zeros((3, 3), np.float32),
                        "encoder.extra.weight": np.zeros(1, np.float32),
                        "decoder.block.0.x": np.zeros(1, np.float32)}, cfg)
  msg = str(e.value)
  assert "encoder.final_layer_norm.weight" in msg
  assert "unexpected (1): encoder.extra.weight" in msg
  assert "q.weight has (3, 3) want (32, 32)" in msg
  with pytest.raises(ValueError, match="feed_forward_proj"):
    T5Config(feed_forward_proj="swish")
