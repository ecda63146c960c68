"""Runs stable-audio-tools' MultiConditioner on the toy SAO checkpoint
(PyTorch, .ci/refenv).

  .ci/refenv/bin/python tests/reference/sao_conditioner.py WORKDIR

Reads WORKDIR/request.json {sao_dir, t5_dir, captions, seconds_total}:
sao_dir holds a stable-audio-tools model_config.json and model.safetensors
(tests/sao_fixture.py), t5_dir a transformers T5 (config.json,
model.safetensors, spiece.model). Builds the conditioner with
`create_multi_conditioner_from_conditioning_config` from the model
config's "conditioning" block, loads its `conditioner.*` weights from the
checkpoint, runs it on [{"prompt": caption, "seconds_total": s}, ...] and
assembles the DiT inputs with ConditionedDiffusionModelWrapper's own
`get_conditioning_inputs`. Writes WORKDIR/outputs.npz: cross [B, L, D],
global [B, G] (T5 in float32) and cross_fp16 (T5 in float16, as
T5Conditioner runs it).

Two adaptations, neither of which touches what is compared:
  - T5Conditioner loads "t5-base" by name from the hub; here the model's
    `from_pretrained` is pointed at t5_dir (offline). transformers 5 builds
    its T5 tokenizer from spiece.model only through protobuf / tiktoken,
    absent here, so the tokenizer is sentencepiece called with HF T5's
    rules for SAO's arguments (truncation, padding="max_length": ids
    truncated to max_length - 1, then </s> = 1, then pad 0; mask = real
    tokens): `_SpmTokenizer`. The T5 encoder, the masking, the number
    conditioner and the assembly are stable-audio-tools'/transformers'.
  - T5Conditioner sizes its output projection from its table of model
    widths (t5-base: 768): at SAO's width 768 = cond_dim it is an
    Identity; the toy T5 is 16 wide (= cond_dim), so the projection is set
    back to the Identity SAO has.
"""
import json
import sys
import types

import numpy as np
import torch


class _Stub(types.ModuleType):
  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    return type(name, (), {})


def _stub_modules():
  """Conditioners import torchaudio/k_diffusion at module level only."""
  for name in ("torchaudio", "torchaudio.transforms", "torchaudio.functional",
               "k_diffusion"):
    mod = _Stub(name)
    mod.__path__ = []
    sys.modules.setdefault(name, mod)
  sys.modules["torchaudio"].transforms = sys.modules["torchaudio.transforms"]
  sys.modules["torchaudio"].functional = sys.modules["torchaudio.functional"]


class _SpmTokenizer:
  """HF T5 tokenizer's __call__ for SAO's arguments, on sentencepiece."""

  def __init__(self, model_file):
    import sentencepiece as spm
    self.sp = spm.SentencePieceProcessor(model_file=model_file)

  def __call__(self, texts, truncation, max_length, padding, return_tensors):
    assert truncation and padding == "max_length" and return_tensors == "pt"
    ids = torch.zeros((len(texts), max_length), dtype=torch.long)
    mask = torch.zeros((len(texts), max_length), dtype=torch.long)
    for i, t in enumerate(texts):
      row = self.sp.encode(t)[:max_length - 1] + [1]
      ids[i, :len(row)] = torch.tensor(row)
      mask[i, :len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def main(work):
  with open(f"{work}/request.json") as f:
    req = json.load(f)
  with open(f"{req['sao_dir']}/model_config.json") as f:
    mc = json.load(f)
  import transformers               # before the stubs (it probes torchaudio)
  _stub_modules()
  real_model = transformers.T5EncoderModel.from_pretrained

  def tokenizer(name, *a, **k):
    return _SpmTokenizer(f"{req['t5_dir']}/spiece.model")

  def model(name, *a, **k):
    return real_model(req["t5_dir"], *a, **k)
  transformers.AutoTokenizer.from_pretrained = tokenizer
  transformers.T5EncoderModel.from_pretrained = model
  from stable_audio_tools.models.conditioners import (
      create_multi_conditioner_from_conditioning_config)
  from stable_audio_tools.models.diffusion import (
      ConditionedDiffusionModelWrapper)
  cond = create_multi_conditioner_from_conditioning_config(
      mc["model"]["conditioning"])
  t5 = cond.conditioners["prompt"]
  t5.proj_out = torch.nn.Identity()
  from safetensors.torch import load_file
  sd = load_file(f"{req['sao_dir']}/model.safetensors")
  own = {k[len("conditioner."):]: v for k, v in sd.items()
         if k.startswith("conditioner.")}
  missing, unexpected = cond.load_state_dict(own, strict=False)
  assert not unexpected, unexpected
  assert all(k.startswith("conditioners.prompt.") for k in missing), missing
  diff = mc["model"]["diffusion"]
  wrapper = types.SimpleNamespace(
      cross_attn_cond_ids=diff["cross_attention_cond_ids"],
      global_cond_ids=diff["global_cond_ids"], input_concat_ids=[],
      prepend_cond_ids=[])
  meta = [{"prompt": c, "seconds_total": req["seconds_total"]}
          for c in req["captions"]]
  out = {}
  # T5Conditioner casts its weights to float16 at load; the float32 pass
  # runs the same checkpoint loaded without that cast.
  half = t5.model
  full = real_model(req["t5_dir"]).eval()
  for name, model in (("", full), ("_fp16", half)):
    t5.__dict__["model"] = model
    with torch.no_grad():
      tensors = cond(meta, "cpu")
      inputs = ConditionedDiffusionModelWrapper.get_conditioning_inputs(
          wrapper, tensors)
    out["cross" + name] = inputs["cross_attn_cond"].float().numpy()
    if not name:
      out["global"] = inputs["global_cond"].float().numpy()
  np.savez(f"{work}/outputs.npz", **out)


if __name__ == "__main__":
  main(sys.argv[1])
