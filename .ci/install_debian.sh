#!/usr/bin/env bash
# Debian packages the test suite needs, installed only where missing
# (idempotent: a second run does nothing and needs no network).
#   fluidsynth + timgm6mb-soundfont  tests/test_data_demo.py (MIDI render)
#   tmux                             tests/test_live_cli.py (`lmdm live` in a
#                                    terminal)
# Without them those tests skip, so this script fails loudly instead of
# letting a fresh machine pass with skips. Runs as root or through sudo.
set -euo pipefail
need=()
command -v fluidsynth >/dev/null 2>&1 || need+=(fluidsynth)
[ -e /usr/share/sounds/sf2/TimGM6mb.sf2 ] || need+=(timgm6mb-soundfont)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
[ "${#need[@]}" -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_debian.sh: no apt-get here; install by hand: ${need[*]}" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install_debian.sh: not root and no sudo; as root run: apt-get" \
         "install ${need[*]}" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
echo "install_debian.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" \
    >/dev/null
