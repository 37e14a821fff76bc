#!/usr/bin/env bash
# Make sure a Python >= 3.10 with venv exists, then create the virtual environment $1, with the pip
# version of the constraints file $2 (when given).
set -euo pipefail
venv=${1:-.venv}
lock=${2:-}
# The C++ kernels need a C++ compiler at install time; install one where we can, else say so
# (the package still installs, with the pure-torch kernels).
if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing g++ with apt-get (for sparsetorch's C++ kernels)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++
  else
    echo "note: no C++ compiler found; sparsetorch installs without its C++ kernels (pure-torch fallback)." \
      "Install g++ (apt-get install g++) and run make setup again for the fast kernels." >&2
  fi
fi
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing python3-venv with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip
  else
    echo "error: python3 with the venv module is required; as root run: apt-get install -y python3-venv" >&2
    exit 1
  fi
fi
python3 -c 'import sys; assert sys.version_info >= (3, 10), "sparsetorch needs Python >= 3.10"'
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --upgrade ${lock:+-c "$lock"} pip
