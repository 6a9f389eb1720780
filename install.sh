#!/usr/bin/env bash
# Installs foldscreen and everything its workflow and tests need into ./.venv (or into the
# active virtual environment when one is active).
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${VIRTUAL_ENV:-}" ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    PY=.venv/bin/python
else
    PY=python
fi
"$PY" -m pip install --upgrade pip
"$PY" -m pip install "torch==2.13.0"
# openfold3 without its declared requirements (see pyproject.toml for why); they come next.
"$PY" -m pip install --no-deps "openfold3==0.5.0"
"$PY" -m pip install -e ".[test]"
echo "foldscreen installed; activate with: . .venv/bin/activate"
