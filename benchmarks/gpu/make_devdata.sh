#!/usr/bin/env bash
# Everything a GPU lease carries that git does not hold, made in a checkout where ./install.sh
# has run (about 5 minutes on the idle 2-core VM; folders already made are kept):
#   .wmlx       mlx and mlx-cuda-13 for Python 3.12, the latter split in two (part_aa, part_ab)
#   .whl        OpenFold3's model and featuriser; .whlbt biotite 1.6 (57 MB, a call of its own);
#   .whlboto    boto3 and what OpenFold3's writer imports with it; .whlwriter pdbeccdutils, RDKit,
#               lmdb; .xlibs the X libraries RDKit's drawing module loads (Debian's)
#   .devdata    the features of the speed and accuracy rows, the 200-query screen and its
#               ten-query sample, the released architecture as JSON
# See docs/DEVELOPING.md ("A new checkout has none of the ignored data") for what each is for.
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
download() {  # folder, then requirements: wheels for the GPU machine's Python 3.12
    local folder=$1
    shift
    [ -d "$folder" ] && return
    mkdir -p "$folder.tmp"
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux_2_35_x86_64 --platform any \
        -d "$folder.tmp" "$@"
    mv "$folder.tmp" "$folder"
}
for folder in .wmlx .whl .whlbt .whlboto .whlwriter .xlibs .devdata; do
    grep -qx "/$folder/" .git/info/exclude 2>/dev/null || echo "/$folder/" >> .git/info/exclude
done
if [ ! -d .wmlx ]; then
    download .wmlx.dl mlx==0.32.4 mlx-cuda-13==0.32.4
    (cd .wmlx.dl && split -b 46m mlx_cuda_13-0.32.4-*.whl part_ && rm mlx_cuda_13-0.32.4-*.whl)
    mv .wmlx.dl .wmlx
fi
if [ ! -d .whl ]; then
    download .whl.dl openfold3==0.5.0 biotraj gemmi ml-collections pydantic pydantic-core \
        annotated-types typing-inspection "typing-extensions>=4.16" memory_profiler psutil \
        kalign-python click pysocks tqdm
    python -m pip wheel -q --no-deps -w .whl.dl func-timeout  # an sdist on PyPI
    mv .whl.dl .whl
fi
download .whlbt biotite==1.6.0  # as tested here (3.12 resolves biotite<2 to 1.8, untested)
download .whlboto boto3 botocore jmespath s3transfer python-dateutil urllib3 six awscrt
download .whlwriter pdbeccdutils==1.0.4 rdkit==2025.9.6 lmdb==3.0.0 msgpack
if [ ! -d .xlibs ]; then
    debs=$(mktemp -d)
    (cd "$debs" && apt-get download -q libxrender1 libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 \
        libbsd0 libmd0 && for deb in *.deb; do dpkg-deb -x "$deb" root; done)
    mkdir -p .xlibs.tmp
    for lib in libXrender.so.1 libX11.so.6 libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 \
        libbsd.so.0 libmd.so.0; do  # by soname, links resolved (a carried link may not travel)
        cp -L "$(find "$debs/root" -name "$lib" | head -n 1)" .xlibs.tmp/
    done
    mv .xlibs.tmp .xlibs
fi
mkdir -p .devdata
[ -f .devdata/architecture.json ] || python - <<'PY'
from pathlib import Path

from foldscreen.inference.model_config import model_config
from foldscreen.inference.settings import InferenceSettings

settings = InferenceSettings(backend="mlx", device="cuda", weights="released", samples=5,
                             recycles=3, diffusion_steps=200)
Path(".devdata/architecture.json").write_text(model_config(settings).architecture.to_json())
PY
[ -f .devdata/protein_1000.npz ] || python benchmarks/gpu/make_features.py --out .devdata
[ -f .devdata/screen/featurise_s.json ] || python benchmarks/gpu/make_screen.py --out .devdata/screen
[ -d .devdata/screen_sample ] || python benchmarks/gpu/make_screen.py --out .devdata/screen --sample 10
du -sh .wmlx .whl .whlbt .whlboto .whlwriter .xlibs .devdata
