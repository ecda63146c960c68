#!/usr/bin/env bash
# Debian packages the test suite needs, installed only where missing
# (idempotent: a second run does nothing and needs no network). Without
# them their tests would skip, so this script fails loudly instead of
# letting a fresh machine pass with skips. Runs as root or through sudo.
set -euo pipefail
# "<command, or /file, that shows it is installed> <Debian package>":
# fluidsynth + a GM soundfont render MIDI (tests/data/test_data_demo.py); tmux
# drives `lmdm live` through a terminal (tests/live/test_live_cli.py);
# chromium + its driver play `lmdm serve`'s page
# (tests/serve/test_serve_browser.py); shellcheck lints the launch scripts
# (tests/test_launch.py).
NEEDS=(
  "fluidsynth fluidsynth"
  "/usr/share/sounds/sf2/TimGM6mb.sf2 timgm6mb-soundfont"
  "tmux tmux"
  "chromium chromium"
  "chromedriver chromium-driver"
  "shellcheck shellcheck"
)
need=()
for entry in "${NEEDS[@]}"; do
  read -r probe package <<<"$entry"
  if [[ "$probe" == /* ]]; then
    [ -e "$probe" ] || need+=("$package")
  else
    command -v "$probe" >/dev/null 2>&1 || need+=("$package")
  fi
done
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
