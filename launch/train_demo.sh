#!/usr/bin/env bash
# The embedded demo model, end to end, on one machine (the shipped
# lmdm_jax/assets/demo came from exactly this; docs/demo-model.md).
#   bash launch/train_demo.sh [DEMO_DIR] [WORKDIR] [CODEC]
# CODEC: semitone (default: the shipped demo model's codec) or mel (the
# demo model's until 2026-12-01); each builds its own DEMO_DIR/tfds_CODEC
# and trains configs/demo.py:CODEC. The exported default CFG is the one
# chosen by measurement for that codec's model (docs/demo-model.md,
# "Sampling settings"): 2 for semitone, 3 for mel.
# Each stage resumes: re-run the script after an interruption.
set -euo pipefail
DEMO=${1:-demo_data}
WORK=${2:-runs/demo}
CODEC=${3:-semitone}
case "$CODEC" in
  semitone) TFDS="$DEMO/tfds_$CODEC"; CONFIG="configs/demo.py:$CODEC"; CFG=2 ;;
  mel) TFDS="$DEMO/tfds_$CODEC"; CONFIG="configs/demo.py:$CODEC"; CFG=3 ;;
  *) echo "train_demo.sh: unknown codec '$CODEC' (semitone or mel)" >&2
     exit 2 ;;
esac
# Debian: synthesiser, GM soundfonts, recorded orchestral music.
if ! command -v fluidsynth >/dev/null; then
  apt-get install -y --no-install-recommends fluidsynth timgm6mb-soundfont \
      fluid-soundfont-gm wesnoth-1.16-music
fi
python3 -m pip install -e ".[data,demo]"
lmdm data demo --out "$DEMO" --workers 2
lmdm data build --audio-dir "$DEMO/audio/train" --codec "$CODEC" \
    --out "$TFDS" --min-frames 120
lmdm train --config "$CONFIG" --workdir "$WORK" \
    --config.data.dir="$TFDS"
lmdm export --config "$CONFIG" --workdir "$WORK" \
    --data-dir "$TFDS" --out lmdm_jax/assets/demo --cfg "$CFG" --steps 8
