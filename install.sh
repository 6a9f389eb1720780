#!/usr/bin/env bash
# Installs foldscreen and everything its workflow and tests need into ./.venv (or into the
# active virtual environment when one is active).
set -euo pipefail
cd "$(dirname "$0")"
# The Debian tools that local MSA search, the report's browser tests and the cluster tests (a
# single-node Slurm, started by the tests as root) run. Installed where this runs as root with
# apt-get (Debian, Ubuntu); elsewhere, or if that fails, the tests that need them skip and say
# how to install them.
DEBS="mmseqs2 hmmer chromium chromium-driver slurm-wlm munge"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $DEBS || { apt-get update -q && apt-get install -y -q $DEBS; } \
        || echo "install.sh: could not install $DEBS; the tests that need them will skip" >&2
else
    for tool in mmseqs jackhmmer chromium chromedriver slurmctld munged; do
        command -v "$tool" >/dev/null || {
            echo "install.sh: $tool is missing: install $DEBS (tests that need them skip)" >&2
            break
        }
    done
fi
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
