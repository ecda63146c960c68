"""Runs stable-audio-tools' OobleckEncoder/Decoder (PyTorch, .ci/refenv).

  .ci/refenv/bin/python tests/reference/oobleck.py WORKDIR

Reads WORKDIR/model_config.json (SAO-style autoencoder section) and
WORKDIR/inputs.npz (audio [B, channels, samples], latents [B, C, frames]);
randomises every parameter (weight-norm g and v, snake alpha/beta, biases)
and writes WORKDIR/model.safetensors (`pretransform.model.` names, old
weight_g/weight_v API as in released checkpoints) and WORKDIR/outputs.npz.
"""
import json
import sys

import numpy as np
import torch

from sao_dit import _stub_modules


def main(work):
  with open(f"{work}/model_config.json") as f:
    mc = json.load(f)
  inputs = dict(np.load(f"{work}/inputs.npz"))
  _stub_modules()
  from stable_audio_tools.models.autoencoders import (OobleckDecoder,
                                                      OobleckEncoder)
  pt = mc["model"]["pretransform"]["config"]
  enc = OobleckEncoder(**pt["encoder"]["config"]).eval()
  dec = OobleckDecoder(**pt["decoder"]["config"]).eval()
  g = torch.Generator().manual_seed(3)
  with torch.no_grad():
    for m in (enc, dec):
      for name, p in m.named_parameters():
        n = torch.randn(p.shape, generator=g)
        if name.endswith("weight_g"):
          p.copy_(0.5 + torch.rand(p.shape, generator=g))
        elif name.endswith("weight_v"):
          p.copy_(n)
        elif name.endswith(("alpha", "beta")):
          p.copy_(0.3 * n)
        else:
          p.copy_(0.1 * n)
    out = {"encoded": enc(torch.from_numpy(inputs["audio"])).numpy(),
           "decoded": dec(torch.from_numpy(inputs["latents"])).numpy()}
  np.savez(f"{work}/outputs.npz", **out)
  sd = {f"pretransform.model.encoder.{k}": v.contiguous()
        for k, v in enc.state_dict().items()}
  sd.update({f"pretransform.model.decoder.{k}": v.contiguous()
             for k, v in dec.state_dict().items()})
  sd["model.model.timestep_features.weight"] = torch.zeros(4, 1)
  from safetensors.torch import save_file
  save_file(sd, f"{work}/model.safetensors")


if __name__ == "__main__":
  main(sys.argv[1])
