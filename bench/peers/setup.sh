#!/usr/bin/env bash
# Makes the virtual environment of the peer benchmarks (Ray, Dask, numpy from PyPI) and prints
# its path on stdout, so a caller can run `"$(bench/peers/setup.sh)/bin/python" run_ray.py`.
#
#   DIPLA_PEERS_VENV   where the venv lives (default: target/peers-venv under the repo root)
#   DIPLA_PEERS_PYTHON the Python to make it with (default: pyenv's 3.11.7, else python3.11,
#                      else python3)
#
# Idempotent: when the venv exists and was made from this very requirements.txt, it only checks
# that the packages import, and installs nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${DIPLA_PEERS_VENV:-$root/target/peers-venv}"
requirements="$here/requirements.txt"
stamp="$venv/.dipla-peers-requirements"

say() { echo "[peers setup] $*" >&2; }

find_python() {
    if [[ -n "${DIPLA_PEERS_PYTHON:-}" ]]; then
        echo "$DIPLA_PEERS_PYTHON"
    elif [[ -x /root/.pyenv/versions/3.11.7/bin/python ]]; then
        echo /root/.pyenv/versions/3.11.7/bin/python
    elif command -v python3.11 >/dev/null; then
        command -v python3.11
    else
        command -v python3
    fi
}

imports_ok() {
    "$venv/bin/python" -c 'import ray, dask, distributed, numpy' >/dev/null 2>&1
}

if [[ -f "$stamp" ]] && cmp -s "$stamp" "$requirements" && imports_ok; then
    echo "$venv"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    python="$(find_python)"
    say "making $venv with $python ($("$python" -V 2>&1))"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi

say "installing $(grep -cE '^[A-Za-z]' "$requirements") pinned packages (ray, dask, numpy, ...)"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet -r "$requirements" >&2
imports_ok || { say "the packages do not import after installing"; exit 1; }
cp "$requirements" "$stamp"
echo "$venv"
