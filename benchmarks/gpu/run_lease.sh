#!/usr/bin/env bash
# One lease of the lent GPU (see docs/DEVELOPING.md for how the wheels travel), in steps sent
# back to back so the machine stays warm between them:
#   stage     (carry .wmlx/part_aa and the mlx wheel)  keep the first half of mlx-cuda-13
#   openfold3 (carry .whl .devdata)   install OpenFold3's model dependencies, time its predict preset
#   mlx       (carry .wmlx/part_ab .devdata)  rejoin and install MLX, time the port
#   more      (carry .devdata)        bfloat16, eager and accuracy rows
# Every row goes to benchmarks/results/gpu.jsonl and is copied to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
step=$1
lease=${2:-$(date -u +%Y%m%dT%H%M)}
site=/tmp/site
export PYTHONPATH=$site:$PWD/src PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
bench() { python3 benchmarks/gpu/bench_gpu.py "$@" --lease "$lease" 2>>/tmp/bench.err; }
D=.devdata
case $step in
stage)
    mkdir -p /tmp/w && cp .wmlx/* /tmp/w/ && ls -la /tmp/w && nvidia-smi --query-gpu=name,memory.total --format=csv ;;
openfold3)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site .whl/*.whl || exit 1
    bench speed openfold3 --features $D/protein_100.npz $D/protein_384.npz $D/protein_1000.npz
    bench speed openfold3 --samples 1 --features $D/protein_384.npz
    tail -n 5 /tmp/bench.err ;;
mlx)
    cat /tmp/w/part_aa .wmlx/part_ab > /tmp/w/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site \
        /tmp/w/mlx-0.32.4-*.whl /tmp/w/mlx_cuda_13-*.whl || exit 1
    bench speed mlx --features $D/protein_100.npz $D/protein_384.npz
    bench speed mlx --samples 1 --features $D/protein_384.npz
    bench speed mlx --chunk-size 256 --features $D/protein_1000.npz
    tail -n 5 /tmp/bench.err ;;
more)
    bench speed mlx --precision bfloat16 --features $D/protein_100.npz $D/protein_384.npz
    bench speed mlx --eager --repeats 1 --features $D/protein_384.npz
    bench accuracy mlx --precision bfloat16 --features $D/acc_*.npz
    tail -n 5 /tmp/bench.err ;;
esac
mkdir -p "${OUT:-/tmp/out}" && cp benchmarks/results/gpu.jsonl "${OUT:-/tmp/out}/gpu_$step.jsonl" 2>/dev/null
cp /tmp/bench.err "${OUT:-/tmp/out}/bench_$step.err" 2>/dev/null
exit 0
