#!/usr/bin/env bash
# The embedded demo model, end to end, on one machine (the shipped
# lmdm_jax/assets/demo came from exactly this; docs/demo-model.md).
#   bash launch/train_demo.sh [DEMO_DIR] [WORKDIR] [CODEC]
# CODEC: semitone_onset (the shipped demo model's since 2026-12-03: the
# sub-pitch layout + an onset channel; a 1500-step fine-tune of a
# sub-pitch demo package, $INIT, default lmdm_jax/assets/demo as a
# semitone_sub run leaves it: run `... W1 semitone_sub` first),
# semitone_sub (default; semitone's sub-pitch layout, docs/codecs_and_import.md),
# semitone (the previous demo model's, and the sketch and jam models'
# layout) or mel (the demo model's until 2026-12-01); each builds its own DEMO_DIR/tfds_CODEC
# and trains configs/demo.py:CODEC. The exported default CFG is the one
# chosen by measurement for that codec's model (docs/demo-model.md,
# "Sampling settings"): 1.5 for semitone(_sub), 3 for mel. The semitone model's
# block level profile is then measured on training prompts and stored in
# the package (lmdm_jax/live/block_level.py; three runs, each adding what
# is left, as the shipped one was made).
# Each stage resumes: re-run the script after an interruption.
set -euo pipefail
DEMO=${1:-demo_data}
WORK=${2:-runs/demo}
CODEC=${3:-semitone_sub}
BUILD=(--codec "$CODEC")
case "$CODEC" in
  semitone) CFG=1.5 ;;
  semitone_sub)      # semitone's sub-pitch layout (SUB_PITCH_LAYOUT)
    CFG=1.5
    BUILD=(--codec semitone --codec-kwargs '{"sub_pitch": true, "sub_share": 0.7}') ;;
  semitone_onset)    # the sub-pitch layout + an onset channel (ONSET_LAYOUT)
    CFG=1.5
    BUILD=(--codec semitone --codec-kwargs '{"sub_pitch": true, "sub_share": 0.7, "onset_channel": true}') ;;
  mel) CFG=3 ;;
  *) echo "train_demo.sh: unknown codec '$CODEC' (semitone, semitone_sub, semitone_onset or mel)" >&2
     exit 2 ;;
esac
TFDS="$DEMO/tfds_$CODEC"
CONFIG="configs/demo.py:$CODEC"
# Debian: synthesiser, GM soundfonts, recorded orchestral music.
if ! command -v fluidsynth >/dev/null; then
  apt-get install -y --no-install-recommends fluidsynth timgm6mb-soundfont \
      fluid-soundfont-gm wesnoth-1.16-music
fi
python3 -m pip install -e ".[data,demo]"
lmdm data demo --out "$DEMO" --workers 2
lmdm data build --audio-dir "$DEMO/audio/train" "${BUILD[@]}" \
    --out "$TFDS" --min-frames 120
INIT_ARGS=()
if [ "$CODEC" = semitone_onset ]; then
  INIT_ARGS=(--config.init.params="${INIT:-lmdm_jax/assets/demo}")
fi
lmdm train --config "$CONFIG" --workdir "$WORK" \
    --config.data.dir="$TFDS" "${INIT_ARGS[@]}"
lmdm export --config "$CONFIG" --workdir "$WORK" \
    --data-dir "$TFDS" --out lmdm_jax/assets/demo --cfg "$CFG" --steps 8
if [ "$CODEC" != mel ]; then
  PKG=lmdm_jax/assets/demo
  for run in "9 4 32 12 2" "9 4 32 12 $CFG" "29 2 16 30 $CFG"; do
    read -r every clips n seconds cfg <<<"$run"
    PYTHONPATH=. python3 benchmarks/block_profile.py --model "$PKG" \
        --heldout "$DEMO/audio/train" --every "$every" --clips "$clips" \
        --generated "$n" --seconds "$seconds" --cfg "$cfg" --calibrate "$PKG"
  done
fi
if [ "$CODEC" = semitone_onset ]; then
  # Profiles at other guidance scales (defaults.block_level_db_by_cfg):
  # this model's blocks start louder at CFG 1.5 and quieter at 7.
  for cfg in 1 3 5 7; do
    PYTHONPATH=. python3 benchmarks/block_profile.py --model "$PKG" \
        --heldout "$DEMO/audio/train" --every 29 --clips 1 \
        --generated 16 --seconds 30 --cfg "$cfg" --calibrate "$PKG"
  done
fi
