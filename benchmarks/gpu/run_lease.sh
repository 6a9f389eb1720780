#!/usr/bin/env bash
# One lease of the lent GPU (see docs/DEVELOPING.md for how the wheels travel), in steps sent
# back to back so the machine stays warm between them (it keeps files about 30 s after a call):
#   stage   (carry .wmlx/part_aa .wmlx/mlx-0.32.4-*.whl)  keep the first half of mlx-cuda-13
#   deps    (carry .whl .devdata/ref)  install OpenFold3's model dependencies; OpenFold3 on a few
#           of the screen's queries, once each (the per-query reference of the screen row)
#   mlx     (carry .wmlx/part_ab .devdata)  rejoin and install MLX; speed rows, batched rows
#   more    (no carry)                 CUDA-graph settings, bfloat16 accuracy, 1,000 tokens
#   screen  (carry .whlboto .devdata/screen) the 200-query screen through the inference task loop
#           (OpenFold3's output writer imports boto3: its wheels travel in this call)
#   memory  (carry .devdata/architecture.json .devdata/protein_384.npz .devdata/protein_1000.npz)
#           model chunks at 384 and 1,000 tokens: peak and time
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
deps)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site .whl/*.whl || exit 1
    first=$(ls $D/ref/*.npz | head -n 1)
    bench speed openfold3 --warmups 0 --repeats 1 --features "$first" $D/ref/*.npz
    tail -n 5 /tmp/bench.err ;;
mlx)
    cat /tmp/w/part_aa .wmlx/part_ab > /tmp/w/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site \
        /tmp/w/mlx-0.32.4-*.whl /tmp/w/mlx_cuda_13-*.whl || exit 1
    A="--architecture $D/architecture.json"
    bench speed mlx $A --features $D/protein_100.npz $D/protein_384.npz
    bench speed mlx $A --repeats 1 --batch 4 --features $D/protein_384.npz
    bench speed mlx $A --repeats 1 --batch 12 --features $D/protein_100.npz
    tail -n 5 /tmp/bench.err ;;
screen)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site .whlboto/*.whl || exit 1
    bench screen mlx --budget-s 540 --features $D/screen/*.npz
    tail -n 5 /tmp/bench.err ;;
more)
    A="--architecture $D/architecture.json"
    MLX_MAX_OPS_PER_BUFFER=200 MLX_CUDA_GRAPH_CACHE_SIZE=1000 bench speed mlx $A --features $D/protein_100.npz $D/protein_384.npz
    bench accuracy mlx $A --eager --precision bfloat16 --samples 2 --features \
        $D/acc_protein_60.npz $D/acc_protein_150.npz $D/acc_homotrimer.npz $D/acc_protein_rna.npz
    bench speed mlx $A --repeats 1 --features $D/protein_1000.npz
    tail -n 5 /tmp/bench.err ;;
memory)
    A="--architecture $D/architecture.json"
    for c in 128 256; do bench speed mlx $A --repeats 1 --chunk-size $c --features $D/protein_384.npz; done
    bench speed mlx $A --repeats 1 --chunk-size 128 --features $D/protein_1000.npz
    tail -n 5 /tmp/bench.err ;;
check)  # (carry .wmlx/part_ab .devdata/check) MLX installed; compiled against eager on the GPU
    cat /tmp/w/part_aa .wmlx/part_ab > /tmp/w/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site \
        /tmp/w/mlx-0.32.4-*.whl /tmp/w/mlx_cuda_13-*.whl || exit 1
    A="--architecture $D/check/architecture.json"
    bench accuracy mlx $A --against-eager --samples 2 --features $D/check/protein_100.npz
    bench speed mlx $A --eager --warmups 0 --repeats 1 --features $D/check/protein_100.npz
    bench speed mlx $A --warmups 1 --repeats 2 --features $D/check/protein_100.npz
    tail -n 5 /tmp/bench.err ;;
esac
mkdir -p "${OUT:-/tmp/out}" && cp benchmarks/results/gpu.jsonl "${OUT:-/tmp/out}/gpu_$step.jsonl" 2>/dev/null
cp /tmp/bench.err "${OUT:-/tmp/out}/bench_$step.err" 2>/dev/null
exit 0
