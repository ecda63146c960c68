"""Runs transformers' T5EncoderModel (PyTorch, .ci/refenv).

  .ci/refenv/bin/python tests/reference/t5.py WORKDIR

Reads WORKDIR/t5_config.json (T5Config kwargs) and WORKDIR/inputs.npz
(ids, mask); randomises every parameter (layer-norm gains too),
saves the model with save_pretrained to WORKDIR/hf (config.json +
model.safetensors) and writes the last hidden state to WORKDIR/outputs.npz.
"""
import json
import sys

import numpy as np
import torch


def main(work):
  from transformers import T5Config, T5EncoderModel
  with open(f"{work}/t5_config.json") as f:
    kw = json.load(f)
  inputs = dict(np.load(f"{work}/inputs.npz"))
  model = T5EncoderModel(T5Config(**kw, dropout_rate=0.0)).eval()
  g = torch.Generator().manual_seed(5)
  with torch.no_grad():
    for name, p in model.named_parameters():
      n = torch.randn(p.shape, generator=g)
      if "layer_norm" in name:
        p.copy_(1.0 + 0.1 * n)
      elif p.ndim == 2 and "relative_attention_bias" not in name and (
          "shared" not in name and "embed_tokens" not in name):
        p.copy_(n / np.sqrt(p.shape[1]))
      else:
        p.copy_(n)
    hidden = model(input_ids=torch.from_numpy(inputs["ids"]).long(),
                   attention_mask=torch.from_numpy(inputs["mask"]).long()
                   ).last_hidden_state.numpy()
  model.save_pretrained(f"{work}/hf")
  np.savez(f"{work}/outputs.npz", hidden=hidden)


if __name__ == "__main__":
  main(sys.argv[1])
