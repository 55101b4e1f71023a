#!/usr/bin/env bash
# Builds the documentation: `sphinx-build -W -j auto -b html docs docs/_build/html`, warnings as
# errors. The build executes every notebook in notebooks/ (myst-nb, no cache, 300 s each) and
# fails on any error, so CI needs no separate notebook run. `-j auto` reads the documents in one
# process per core, so the notebooks execute side by side (on 2 cores: 197-203 s against 244 s
# serial, measured back to back on 2026-12-07). Needs the `docs` extra (sphinx, myst-nb,
# sphinx-book-theme). Uses $PYTHON if set, else the repository's .venv if there is one, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# The notebooks are compile-bound: XLA:CPU's backend optimisation off halves their time (the
# meta-training notebook 71 s against 142 s, measured 2026-12-08), as in the test suite
# (tests/conftest.py). performance.md times steps, so its first cell restores XLA's defaults.
case "${XLA_FLAGS:-}" in
  *--xla_backend_optimization_level*) ;;
  *) export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0" ;;
esac
start=$(date +%s)
"$PYTHON" -m sphinx -W --keep-going -j auto -b html docs docs/_build/html "$@"
echo "docs: built docs/_build/html in $(( $(date +%s) - start )) s"
