"""Runs stable-audio-tools' DiT + NumberConditioner (PyTorch, .ci/refenv).

  .ci/refenv/bin/python tests/reference/sao_dit.py WORKDIR

Reads WORKDIR/model_config.json (a stable-audio-tools diffusion_cond
config) and WORKDIR/inputs.npz; builds the reference modules, randomises
EVERY parameter (SAO zero-initialises its output layers, which would hide
bugs), and writes WORKDIR/model.safetensors (full checkpoint names, plus a
fake `pretransform.` tensor the converter must ignore) and
WORKDIR/outputs.npz. LMDM's input-add projection, which stock
stable-audio-tools lacks, is added as the fork does it: a bias-free Linear
whose output is added to `transformer.project_in`'s (via a forward hook).
"""
import json
import sys
import types

import numpy as np
import torch


class _Stub(types.ModuleType):
  """A module whose every attribute is a placeholder class (never called)."""

  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    return type(name, (), {})


def _stub_modules():
  """Conditioners import torchaudio/k_diffusion at module level only; the
  number conditioner never calls them (PyPI's torchaudio needs CUDA libs)."""
  for name in ("torchaudio", "torchaudio.transforms", "torchaudio.functional",
               "k_diffusion"):
    mod = _Stub(name)
    mod.__path__ = []
    sys.modules.setdefault(name, mod)
  sys.modules["torchaudio"].transforms = sys.modules["torchaudio.transforms"]
  sys.modules["torchaudio"].functional = sys.modules["torchaudio.functional"]


def randomise(module, seed):
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in module.named_parameters():
      noise = torch.randn(p.shape, generator=g)
      leaf = name.split(".")[-1]
      if leaf == "gamma" or (leaf == "weight" and p.ndim == 1):
        p.copy_(1.0 + 0.1 * noise)
      elif leaf in ("weight", "weights") and p.ndim >= 2:
        fan_in = int(np.prod(p.shape[1:]))
        p.copy_(noise / np.sqrt(fan_in))
      elif leaf == "weights":
        p.copy_(noise)
      else:
        p.copy_(0.1 * noise)


def main(work):
  torch.manual_seed(0)
  with open(f"{work}/model_config.json") as f:
    mc = json.load(f)
  inputs = dict(np.load(f"{work}/inputs.npz"))
  from stable_audio_tools.models.dit import DiffusionTransformer
  diff = mc["model"]["diffusion"]
  kw = dict(diff["config"])
  kw.pop("postpend", None)        # stock SAO prepends (same RoPE positions)
  input_add = diff.get("input_add_ids", [])
  dit = DiffusionTransformer(**kw).eval()
  add_dim = sum(d for _, d in input_add)
  if add_dim:
    dit.to_input_add_embed = torch.nn.Linear(add_dim, kw["embed_dim"],
                                             bias=False)
  randomise(dit, 1)
  conds = {}
  cond = mc["model"].get("conditioning", {})
  specs = [s for s in cond.get("configs", []) if s["type"] == "number"]
  if specs:
    _stub_modules()
    from stable_audio_tools.models.conditioners import NumberConditioner
    for i, s in enumerate(specs):
      kw = {"output_dim": cond["cond_dim"], **s.get("config", {})}
      conds[s["id"]] = NumberConditioner(**kw).eval()
      randomise(conds[s["id"]], 10 + i)

  out = {}
  with torch.no_grad():
    embeds = {k: c(inputs[k].tolist())[0] for k, c in conds.items()}
    for k, e in embeds.items():
      out[f"embed_{k}"] = e.numpy()
    cross = None
    if "text" in inputs:
      cross = torch.from_numpy(inputs["text"])
    tail = [embeds[k] for k in diff.get("cross_attention_cond_ids", [])
            if k in embeds]
    if tail:
      cross = torch.cat(([cross] if cross is not None else []) + tail, 1)
    glob = None
    if diff.get("global_cond_ids"):
      glob = torch.cat([embeds[k][:, 0] for k in diff["global_cond_ids"]],
                       -1)
    hook = None
    if add_dim:
      add = dit.to_input_add_embed(
          torch.from_numpy(inputs["input_add"]).transpose(1, 2))
      hook = dit.transformer.project_in.register_forward_hook(
          lambda m, a, o: o + add)
    v = dit(torch.from_numpy(inputs["x"]), torch.from_numpy(inputs["t"]),
            cross_attn_cond=cross, global_embed=glob)
    if hook is not None:
      hook.remove()
    out["v"] = v.numpy()
  np.savez(f"{work}/outputs.npz", **out)
  sd = {"model.model." + k: v.contiguous()
        for k, v in dit.state_dict().items()}
  for cid, c in conds.items():
    sd.update({f"conditioner.conditioners.{cid}." + k: v.contiguous()
               for k, v in c.state_dict().items()})
  sd["pretransform.model.encoder.layers.0.weight"] = torch.zeros(2, 2)
  from safetensors.torch import save_file
  save_file(sd, f"{work}/model.safetensors")


if __name__ == "__main__":
  main(sys.argv[1])
