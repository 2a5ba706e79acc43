#!/usr/bin/env bash
# Create or reuse the environment, then run the test suite.  Extra arguments go to pytest.
# One pytest-xdist worker per core (SNNKD_TEST_WORKERS=N to choose, 0 for none); each worker
# runs its torch work on one thread (tests/conftest.py), so N workers use N cores; tests that
# share an expensive module fixture carry one xdist_group mark and run on one worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -ra -n "${SNNKD_TEST_WORKERS:-auto}" --dist loadgroup "$@"
