"""`lmdm convert sao`: strict import of stable-audio-tools DiT checkpoints.

The parity tests build stable-audio-tools' own `DiffusionTransformer` and
`NumberConditioner` in the PyTorch reference venv with every parameter
random, convert the saved checkpoint with our converter and compare outputs
(float32, max abs err <= 1e-4).
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safetensors.numpy import save_file  # noqa: E402  (the `test` extra)

from lmdm_jax.conditioners import build_conditioners
from lmdm_jax.convert import load_converted
from lmdm_jax.convert.sao import convert_sao, dit_config_from_sao
from lmdm_jax.convert.state_dict import ConversionError, flatten, torch_name
from lmdm_jax.model.dit import DiT
from refenv import needs_refenv, run_reference

# SAO-Small-like: projected cond tokens, q/k LayerNorm, seconds_total as a
# cross token and the global condition, LMDM's input-add, postpended token.
CONFIG_A = {
    "sample_rate": 44100, "sample_size": 524288,
    "model": {
        "conditioning": {"cond_dim": 24, "configs": [
            {"id": "prompt", "type": "t5", "config": {"max_length": 4}},
            {"id": "seconds_total", "type": "number",
             "config": {"min_val": 0, "max_val": 256}}]},
        "diffusion": {
            "type": "dit",
            "cross_attention_cond_ids": ["prompt", "seconds_total"],
            "global_cond_ids": ["seconds_total"],
            "input_add_ids": [["inpaint_mask", 1],
                              ["inpaint_masked_input", 8]],
            "config": {"io_channels": 8, "embed_dim": 128, "depth": 2,
                       "num_heads": 2, "cond_token_dim": 24,
                       "global_cond_dim": 24, "project_cond_tokens": True,
                       "transformer_type": "continuous_transformer",
                       "attn_kwargs": {"qk_norm": "ln"}, "postpend": True}}}}

# SAO-1.0-like: unprojected cond tokens (GQA cross-attention), no q/k norm,
# no global condition, prepended timestep token, no input-add.
CONFIG_B = {
    "model": {
        "diffusion": {
            "type": "dit", "cross_attention_cond_ids": ["prompt"],
            "config": {"io_channels": 8, "embed_dim": 128, "depth": 2,
                       "num_heads": 4, "cond_token_dim": 64,
                       "project_cond_tokens": False}}}}


def _inputs(model_config, rng, batch=2, frames=12, text_tokens=4):
  c = dit_config_from_sao(model_config).dit
  ins = {"x": rng.standard_normal((batch, c.io_channels, frames)),
         "t": rng.uniform(0.05, 0.95, batch),
         "text": rng.standard_normal((batch, text_tokens, c.cond_token_dim))}
  if c.input_add_dim:
    ins["input_add"] = rng.standard_normal((batch, c.input_add_dim, frames))
  if c.global_cond_dim:
    ins["seconds_total"] = np.array([7.5, 300.0])    # 300 is clamped
  return {k: v.astype(np.float32) for k, v in ins.items()}


def _reference(tmp_path, model_config, seed):
  work = str(tmp_path)
  with open(os.path.join(work, "model_config.json"), "w") as f:
    json.dump(model_config, f)
  ins = _inputs(model_config, np.random.default_rng(seed))
  np.savez(os.path.join(work, "inputs.npz"), **ins)
  run_reference("sao_dit.py", work)
  return work, ins, dict(np.load(os.path.join(work, "outputs.npz")))


def _ours(work, ins):
  summary = convert_sao(os.path.join(work, "model.safetensors"),
                        os.path.join(work, "model_config.json"),
                        os.path.join(work, "converted"))
  cfg, params = load_converted(os.path.join(work, "converted"))
  cross, glob, embeds = jnp.asarray(ins["text"]), None, {}
  if cfg.conditioners:
    conds = build_conditioners(cfg.conditioners,
                               [i for i in cfg.cross_ids if i != "prompt"],
                               cfg.global_ids)
    tail, _, glob = conds.apply({"params": params["conditioners"]},
                                {"seconds_total": ins["seconds_total"]})
    embeds["seconds_total"] = tail
    cross = jnp.concatenate([cross, tail], axis=1)
  add = (None if "input_add" not in ins
         else jnp.asarray(ins["input_add"]).transpose(0, 2, 1))
  v = jax.jit(DiT(cfg.dit).apply)(
      {"params": params["dit"]}, jnp.asarray(ins["x"]).transpose(0, 2, 1),
      jnp.asarray(ins["t"]), cross, glob, add)
  return summary, cfg, np.asarray(v).transpose(0, 2, 1), embeds


@needs_refenv
@pytest.mark.parametrize("model_config,name",
                         [(CONFIG_A, "A"), (CONFIG_B, "B")])
def test_dit_parity_with_stable_audio_tools(tmp_path, model_config, name):
  work, ins, ref = _reference(tmp_path, model_config, seed=ord(name))
  summary, cfg, v, embeds = _ours(work, ins)
  assert summary["ignored_prefixes"] == ["pretransform"]
  assert cfg.dit.rope_base == 10000.0
  assert cfg.dit.postpend == (name == "A")
  for k, e in embeds.items():
    np.testing.assert_allclose(e, ref[f"embed_{k}"], atol=1e-5, rtol=0)
  assert v.shape == ref["v"].shape
  assert ref["v"].std() > 0.3          # every branch contributes
  err = np.abs(v - ref["v"]).max()
  print(f"config {name}: max abs err {err:.3g}, |v| std {ref['v'].std():.3g}")
  assert err <= 1e-4, f"config {name}: max abs err {err:.3g}"


def _own_checkpoint(tmp_path):
  """A checkpoint in stable-audio-tools layout made from our own params.

  Independent of torch: inverse of the converter's name and layout mapping.
  """
  from lmdm_jax.model.init import param_shapes
  cfg = dit_config_from_sao(CONFIG_A)
  rng = np.random.default_rng(0)
  params = {p: rng.standard_normal(a.shape).astype(np.float32)
            for p, a in flatten(param_shapes(cfg.dit)).items()}
  sd = {}
  for path, a in params.items():
    if path.endswith("/kernel"):
      a = a.T[..., None] if "process_conv" in path else a.T
    sd["model.model." + torch_name(path)] = np.ascontiguousarray(a)
  for i in range(cfg.dit.depth):
    for n in ("pre_norm", "cross_attend_norm", "ff_norm"):
      sd[f"model.model.transformer.layers.{i}.{n}.beta"] = np.zeros(128,
                                                                    np.float32)
  r = cfg.dit.rotary_dim
  sd["model.model.transformer.rotary_pos_emb.inv_freq"] = (
      1.0 / 10000 ** (np.arange(0, r, 2) / r)).astype(np.float32)
  pre = "conditioner.conditioners.seconds_total.embedder.embedding."
  sd[pre + "0.weights"] = np.ones(128, np.float32)
  sd[pre + "1.weight"] = np.ones((24, 257), np.float32)
  sd[pre + "1.bias"] = np.zeros(24, np.float32)
  with open(tmp_path / "model_config.json", "w") as f:
    json.dump(CONFIG_A, f)
  return params, sd


def test_converter_roundtrips_our_own_layout(tmp_path):
  params, sd = _own_checkpoint(tmp_path)
  save_file(sd, str(tmp_path / "m.safetensors"))
  out = convert_sao(str(tmp_path / "m.safetensors"),
                    str(tmp_path / "model_config.json"), str(tmp_path / "o"))
  assert out["tensors"] == len(params) + 3
  cfg, back = load_converted(str(tmp_path / "o"))
  back = flatten(back["dit"])
  assert sorted(back) == sorted(params)
  for path, a in params.items():
    np.testing.assert_array_equal(back[path], a)


def test_converter_names_missing_renamed_and_misshapen(tmp_path):
  _, sd = _own_checkpoint(tmp_path)
  qkv = "model.model.transformer.layers.1.self_attn.to_qkv.weight"
  ff = "model.model.transformer.layers.0.ff.ff.2.bias"
  kv = "model.model.transformer.layers.0.cross_attn.to_kv.weight"
  del sd[qkv]
  sd["model.model.transformer.layers.0.ff.ff.3.bias"] = sd.pop(ff)
  sd[kv] = np.zeros((10, 3), np.float32)
  save_file(sd, str(tmp_path / "bad.safetensors"))
  with pytest.raises(ConversionError) as e:
    convert_sao(str(tmp_path / "bad.safetensors"),
                str(tmp_path / "model_config.json"), str(tmp_path / "o"))
  msg = str(e.value)
  assert f"missing (2): {ff}, {qkv}" in msg
  assert "unexpected (1): model.model.transformer.layers.0.ff.ff.3.bias" in msg
  assert f"{kv} has (10, 3) want (256, 128)" in msg
  assert not os.path.exists(tmp_path / "o")


def test_converter_rejects_unsupported_configs_and_files(tmp_path):
  bad = json.loads(json.dumps(CONFIG_B))
  bad["model"]["diffusion"]["config"].update(
      {"patch_size": 2, "global_cond_type": "adaLN"})
  with pytest.raises(ValueError, match="patch_size=2.*global_cond_type"):
    dit_config_from_sao(bad)
  with pytest.raises(ValueError, match="no model.diffusion"):
    dit_config_from_sao({"model": {}})
  with pytest.raises(ValueError, match="unsupported checkpoint type"):
    from lmdm_jax.convert.state_dict import read_state_dict
    (tmp_path / "w.bin2").write_text("x")
    read_state_dict(str(tmp_path / "w.bin2"))


def test_sao_small_model_config_reads_as_our_sao_small_dit():
  """The released SAO Small config maps onto configs/sao_small.py's DiT
  (which LMDM extends with input-add and a postpended token)."""
  from lmdm_jax.configs import dit_config, load_config
  from lmdm_jax.convert.released import SAO_SMALL as sao_small
  cfg = dit_config_from_sao(sao_small)
  ours = dit_config(load_config(os.path.join(
      os.path.dirname(os.path.dirname(os.path.dirname(
          os.path.abspath(__file__)))), "configs", "sao_small.py")))
  import dataclasses
  assert cfg.dit == dataclasses.replace(ours, input_add_dim=0,
                                        postpend=False)
  assert cfg.conditioners == ({"id": "seconds_total", "type": "number",
                               "config": {"min_val": 0, "max_val": 256,
                                          "output_dim": 768}},)


def test_convert_sao_cli(tmp_path, capsys):
  from lmdm_jax.cli import main
  _, sd = _own_checkpoint(tmp_path)
  save_file(sd, str(tmp_path / "m.safetensors"))
  assert main(["convert", "sao",
               "--checkpoint", str(tmp_path / "m.safetensors"),
               "--model-config", str(tmp_path / "model_config.json"),
               "--out", str(tmp_path / "o")]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["rope_base"] == 10000.0 and out["dit"]["input_add_dim"] == 9
  assert os.path.exists(tmp_path / "o" / "params.npz")
  import importlib.util
  if importlib.util.find_spec("torch") is None:   # the main install
    from lmdm_jax.convert.state_dict import read_state_dict
    (tmp_path / "m.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match="needs torch"):
      read_state_dict(str(tmp_path / "m.ckpt"))


@needs_refenv
def test_ckpt_reader_with_torch(tmp_path):
  """`.ckpt` (Lightning layout, bf16 included) through torch.load with
  weights_only=True, run where torch exists (the reference venv)."""
  run_reference("read_ckpt.py", str(tmp_path))
  out = dict(np.load(tmp_path / "outputs.npz"))
  names = sorted(k[5:] for k in out if k.startswith("want/"))
  assert names == sorted(k[4:] for k in out if k.startswith("got/"))
  for n in names:
    assert out[f"got/{n}"].dtype == np.float32
    np.testing.assert_array_equal(out[f"got/{n}"], out[f"want/{n}"])
