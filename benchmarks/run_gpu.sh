#!/usr/bin/env bash
# The GPU rows of benchmarks/RESULTS.md, on the lent H100 (see RESULTS.md for how the wheels
# travel there). `torch`: OpenFold3's model on CUDA; `mlx`: the MLX port on MLX's CUDA backend.
# Features come from .devdata/protein_<n>.npz, made on the CPU machine with
#   python benchmarks/bench_trunk.py model --n N --framework torch --features .devdata/protein_N.npz ...
set -uo pipefail
cd "$(dirname "$0")/.."
framework=$1
out=${2:-benchmarks/results/gpu.jsonl}
run() {
    python3 benchmarks/bench_trunk.py model --framework "$framework" "$@" 2>"$out.err" | tail -n 1 | tee -a "$out"
    tail -n 3 "$out.err"
}
extra=()
[ "$framework" = torch ] && extra=(--device cuda)
# The 1,000-token protein: full architecture, no recycling, two diffusion steps, one sample.
if [ "$framework" = mlx ]; then
    run --n 1000 --recycles 0 --steps 2 --repeats 3 --warmups 1 --chunk-size 128 --features .devdata/protein_1000.npz
fi
run --n 1000 --recycles 0 --steps 2 --repeats 3 --warmups 1 --features .devdata/protein_1000.npz "${extra[@]}"
# The whole model at OpenFold3's defaults (3 recycles, 200 steps), one sample, 100 residues.
run --n 100 --repeats 3 --warmups 1 --features .devdata/protein_100.npz "${extra[@]}"
