#!/usr/bin/env bash
# "Loss falls on a small real dataset": 38 tracks (125 min) of Debian's
# wesnoth-1.16-music (GPL-2+, orchestral OGG), encoded with the `pool`
# test codec (SAO latent geometry: 64 channels at 21.53 Hz), then a tiny
# BC model (width 128, depth 2, 64-frame windows: context 48, block 16)
# trained for 400 steps at batch 16 on CPU.
#
#   apt-get install wesnoth-1.16-music
#   bash benchmarks/train_loss_demo.sh [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/lmdm_loss_demo}"
python3 -m lmdm_jax.cli data build \
  --audio-dir /usr/share/games/wesnoth/1.16/data/core/music \
  --codec pool --out "$work/data"
python3 -m lmdm_jax.cli train --config configs/finetune.py:bc,tiny \
  --workdir "$work/run" --no-progress \
  --config.data.source=tfds --config.data.dir="$work/data" \
  --config.model.io_channels=64 --config.model.input_add_dim=65 \
  --config.geometry.context=48 --config.geometry.block=16 \
  --config.loss.max_partial_chunks=3 \
  --config.train.steps=400 --config.train.batch_size=16 \
  --config.train.log_every=10 --config.optim.warmup_steps=20 \
  --config.ckpt.every_steps=200
cp "$work/run/metrics.jsonl" benchmarks/results/train_loss_demo_wesnoth_tiny_bc.jsonl
python3 - <<'PY'
import json
rows = [json.loads(l) for l in open(
    "benchmarks/results/train_loss_demo_wesnoth_tiny_bc.jsonl")]
for r in rows[::5] + rows[-1:]:
  print(f"step {r['step']:4d}  loss {r['loss']:.4f}")
PY
