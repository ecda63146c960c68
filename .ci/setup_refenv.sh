#!/usr/bin/env bash
# Creates .ci/refenv: a separate PyTorch venv with stable-audio-tools' model
# code, used only by the parity tests (driven by subprocess; the project
# itself never imports torch). Idempotent: does nothing if the venv works.
# torch is pinned to the CPU build (a plain `torch` would pull CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=.ci/refenv
if [ -x "$ENV/bin/python" ] && "$ENV/bin/python" -c \
    "import torch, safetensors, transformers, sentencepiece, stable_audio_tools.models.dit" \
    >/dev/null 2>&1; then
  exit 0
fi
python3 -m venv "$ENV"
PIP="$ENV/bin/python -m pip install --quiet --disable-pip-version-check"
$PIP torch==2.13.0 einops numpy safetensors huggingface_hub
$PIP --no-deps stable-audio-tools alias-free-torch einops-exts
# T5 reference (transformers' T5EncoderModel) and its tokenizer library.
$PIP transformers sentencepiece
