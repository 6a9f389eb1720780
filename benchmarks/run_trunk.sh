#!/usr/bin/env bash
# The trunk benchmark matrix of benchmarks/RESULTS.md; one JSON line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/trunk.jsonl}
run() { .venv/bin/python benchmarks/bench_trunk.py "$@" 2>/dev/null | tail -n 1 | tee -a "$out"; }
for n in 128 256; do
    run block --n $n --framework torch --repeats 3
    run block --n $n --framework mlx --repeats 3
    FOLDSCREEN_MLX_BLAS=reference run block --n $n --framework mlx --repeats 3
done
run block --n 512 --framework torch --repeats 2
run block --n 512 --framework mlx --repeats 2
run trunk --n 128 --framework torch --repeats 2
run trunk --n 128 --framework mlx --repeats 2
run block --n 512 --framework mlx --repeats 2 --chunk-size 64
run diffusion --n 256 --framework torch --repeats 3
run diffusion --n 256 --framework mlx --repeats 3
