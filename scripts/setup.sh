#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install everything
# the pipeline and its tests need.  Idempotent: a stamp of the dependency files' hash
# skips the pip steps when nothing changed.
#
#   bash scripts/setup.sh            # product + tests + Lava + NIR test readers (+ sinabs)
#   SNNKD_EXTRAS=test,bench bash scripts/setup.sh   # choose extras
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SNNKD_VENV:-.venv}
EXTRAS=${SNNKD_EXTRAS:-test,lava,nirtest,sinabs}

"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "snnkd needs Python >= 3.11")'
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

stamp="$VENV/.snnkd-setup-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch/torchvision/numpy are pinned by constraints.txt so nothing pulls another torch.
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[${EXTRAS}]"
  if [[ ",$EXTRAS," == *",lava,"* ]]; then
    # lava-nc 0.10 / lava-dl 0.6 declare Python < 3.11 and stale pins (numpy < 2, torch < 2.4);
    # those are not real needs (see export/loihi/compat.py), so install them without their
    # metadata's pins; their real dependencies come from the `lava` extra above.
    "$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps --ignore-requires-python \
      lava-nc==0.10.0 lava-dl==0.6.0
  fi
  if [[ ",$EXTRAS," == *",sinabs,"* ]]; then
    # sinabs 3.1 declares nir<=1.0.4 and the proprietary samna (a normal install downgrades
    # nirtorch to 2.0.2 and breaks norse's and sinabs' import of our graphs); its NIR reader
    # needs neither, so no deps: its real ones come from the `sinabs` extra above.
    "$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps sinabs==3.1.3
  fi
  rm -f "$VENV"/.snnkd-setup-*
  touch "$stamp"
fi

# Fashion-MNIST offline: Debian ships it (MIT licence); used by tests and the
# Fashion-MNIST configs.  Best effort: without root or apt the loaders explain what is missing.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 ||
   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) ||
    echo "setup: could not install dataset-fashion-mnist (Fashion-MNIST tests will skip)" >&2
fi
echo "setup: environment ready in $VENV" >&2
