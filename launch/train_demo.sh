#!/usr/bin/env bash
# The embedded demo model, end to end, on one machine (the shipped
# lmdm_jax/assets/demo came from exactly this; docs/demo-model.md).
#   bash launch/train_demo.sh [DEMO_DIR] [WORKDIR]
# Each stage resumes: re-run the script after an interruption.
set -euo pipefail
DEMO=${1:-demo_data}
WORK=${2:-runs/demo}
# Debian: synthesiser, GM soundfonts, recorded orchestral music.
if ! command -v fluidsynth >/dev/null; then
  apt-get install -y --no-install-recommends fluidsynth timgm6mb-soundfont \
      fluid-soundfont-gm wesnoth-1.16-music
fi
python3 -m pip install -e ".[data,demo]"
lmdm data demo --out "$DEMO" --workers 2
lmdm data build --audio-dir "$DEMO/audio/train" --codec mel \
    --out "$DEMO/tfds" --min-frames 120
lmdm train --config configs/demo.py --workdir "$WORK" \
    --config.data.dir="$DEMO/tfds"
lmdm export --config configs/demo.py --workdir "$WORK" \
    --data-dir "$DEMO/tfds" --out lmdm_jax/assets/demo --cfg 3 --steps 8
