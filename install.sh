#!/usr/bin/env bash
# Installs foldscreen and everything its workflow and tests need into ./.venv (or into the
# active virtual environment when one is active).
set -euo pipefail
cd "$(dirname "$0")"

# The report's 3D viewer: the pinned 3Dmol.js release from the npm registry (npm pack), its
# checksum checked, its minified build and licence copied into the package's report templates
# (git-ignored). The report inlines them, so it never fetches anything. `./install.sh --viewer`
# does only this step.
VIEWER_VERSION=2.5.5
VIEWER_SHA256=26d91c5036d4efe78fc032c22cb692fea92bbb3cb1e65d20bf3869673fb3d8f5
vendor_viewer() {
    local dir=build/viewer templates=src/foldscreen/reports/templates
    local tarball="$dir/3dmol-$VIEWER_VERSION.tgz"
    mkdir -p "$dir" \
        && { [ -f "$tarball" ] || (cd "$dir" && npm pack --silent "3dmol@$VIEWER_VERSION" >/dev/null); } \
        && echo "$VIEWER_SHA256  $tarball" | sha256sum --check --quiet \
        && tar -xzf "$tarball" -C "$dir" package/build/3Dmol-min.js package/LICENSE \
        && cp "$dir/package/build/3Dmol-min.js" "$templates/3Dmol-min.js" \
        && cp "$dir/package/LICENSE" "$templates/3Dmol-LICENSE.txt" \
        && echo "install.sh: 3Dmol.js $VIEWER_VERSION vendored into $templates"
}
if [ "${1:-}" = "--viewer" ]; then
    vendor_viewer
    exit
fi
# The Debian tools that local MSA search, the report's browser tests and the cluster tests (a
# single-node Slurm, started by the tests as root) run, and npm (which the viewer step uses)
# where no npm is on PATH: Debian's npm conflicts with NodeSource's nodejs, which brings its own.
# Installed where this runs as root with apt-get (Debian, Ubuntu); elsewhere, or if that fails,
# the tests that need them skip and say how to install them.
DEBS="mmseqs2 hmmer chromium chromium-driver slurm-wlm munge"
command -v npm >/dev/null || DEBS="$DEBS npm"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $DEBS || { apt-get update -q && apt-get install -y -q $DEBS; } \
        || echo "install.sh: could not install $DEBS; the tests that need them will skip" >&2
else
    for tool in mmseqs jackhmmer chromium chromedriver npm slurmctld munged; do
        command -v "$tool" >/dev/null || {
            echo "install.sh: $tool is missing: install $DEBS for local MSA search, the report's" \
                "browser tests and 3D viewer, and the cluster tests (the tests that need them skip)" >&2
            break
        }
    done
fi
vendor_viewer || echo "install.sh: could not vendor the report's 3D viewer (3Dmol.js from npm);" \
    "reports show no 3D view until ./install.sh --viewer succeeds" >&2
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
