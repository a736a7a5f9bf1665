#!/usr/bin/env bash
# Set up everything `make demo` and `make test` need, idempotently:
#  1. the Debian packages the tests use (cross compilers, QEMU, cmake, node, python3-venv);
#     installed when missing and we are root, otherwise the exact apt-get line is printed;
#  2. a virtual environment in .venv with emcgen and its pinned dependencies.
# Re-running is cheap: the venv is only re-installed when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$p; break
    fi
  done
fi

apt_pkgs="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm gcc-riscv64-unknown-elf cmake gcc make"
[ -z "$PYTHON" ] && apt_pkgs="$apt_pkgs python3 python3-venv"
if [ -n "$PYTHON" ] && ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_pkgs="$apt_pkgs python3-venv"
fi
missing=""
for p in $apt_pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"     # runs Netron's kmodel reader in the tests
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
  else
    echo "bootstrap: missing Debian packages; please run:"
    echo "  sudo apt-get install -y$missing"
    [ -z "$PYTHON" ] && exit 1
  fi
fi
if [ -z "$PYTHON" ]; then PYTHON=python3; fi
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "emcgen needs Python 3.11 (tflite-micro ships cp311 wheels only)"'

stamp=.venv/.emcgen-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing emcgen and its pinned dependencies into .venv (first time: about a minute)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[all]"
  echo "$want" > "$stamp"
fi
