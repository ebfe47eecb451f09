#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs everything nmcompile, its tests and its demo need.
# Idempotent and quick the second time: a stamp file records the hash of what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
LAVA="lava-nc==0.10.0"
# Debian packages the toolchain drives (simulators, synthesis); installed when missing.
APT_PACKAGES=(iverilog verilator yosys nextpnr-ice40)

# Checked on every run (a few ms): a machine may keep .venv but lose its Debian packages.
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

want=$(cat requirements.txt scripts/setup.sh pyproject.toml | sha256sum | cut -c1-16)
stamp="$VENV/.nmcompile-setup-$want"
if [[ -f "$stamp" ]]; then
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    py=""
    for cand in python3.11 python3; do
        if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            py=$cand; break
        fi
    done
    [[ -n "$py" ]] || { echo "setup: Python 3.11 is required (python3.11 not found)" >&2; exit 1; }
    echo "setup: creating $VENV with $($py --version)"
    "$py" -m venv "$VENV"
fi

pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
echo "setup: installing Python packages into $VENV (first run only, about a minute)"
"${pip[@]}" install -r requirements.txt
# lava-nc 0.10.0 declares Python <3.11; its real dependencies come from requirements.txt.
"${pip[@]}" install --no-deps --ignore-requires-python "$LAVA"
"${pip[@]}" install --no-deps -e .
rm -f "$VENV"/.nmcompile-setup-*
touch "$stamp"
echo "setup: done"
