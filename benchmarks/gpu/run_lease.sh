#!/usr/bin/env bash
# One lease of the lent GPU (see docs/DEVELOPING.md for how the wheels travel), in steps sent
# back to back so the machine stays warm between them (it keeps files about 30 s after a call):
#   stage    (carry .wmlx/part_aa .wmlx/mlx-0.32.4-*.whl)  keep the first half of mlx-cuda-13
#   deps     (carry .whl .devdata)  install OpenFold3's model dependencies; its speed rows
#   mlx      (carry .wmlx/part_ab .devdata)  rejoin and install MLX; its speed rows (the first
#            with a fresh machine's kernel builds), with larger CUDA graphs, trunk and heads alone
#   screen   (carry .whlboto .devdata)  the 200-query screen through the inference task loop
#            (OpenFold3's output writer imports boto3: its wheels travel in this call)
#   memory   (carry .devdata)  model chunks at 384 and 1,000 tokens: peak and time
#   accuracy (carry .devdata)  bfloat16 against float32 on ten featurised queries
# Each later step needs the earlier ones' installs (/tmp/site stays while the machine is warm).
# Every row goes to benchmarks/results/gpu.jsonl and is copied to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
step=$1
lease=${2:-$(date -u +%Y%m%dT%H%M)}
site=/tmp/site
export PYTHONPATH=$site:$PWD/src PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export MLX_PTX_CACHE_DIR=/tmp/mlx_kernels  # kept while the machine is warm
(while sleep 10; do mkdir -p "${OUT:-/tmp/out}"; cp benchmarks/results/gpu.jsonl "${OUT:-/tmp/out}/gpu_$1.jsonl" 2>/dev/null; done) &
bench() { python3 benchmarks/gpu/bench_gpu.py "$@" --lease "$lease" 2>>/tmp/bench.err; }
D=.devdata
case $step in
stage)
    mkdir -p /tmp/w && cp .wmlx/* /tmp/w/ && ls -la /tmp/w && nvidia-smi --query-gpu=name,memory.total --format=csv
    which nsys ncu nvcc; nproc; python3 -c "import torch; print(torch.__version__)" ;;
deps)  # OpenFold3's predict preset: the reference rows of this lease
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site .whl/*.whl || exit 1
    bench speed openfold3 --features $D/protein_100.npz $D/protein_384.npz
    tail -n 5 /tmp/bench.err ;;
mlx)  # MLX's speed rows: a fresh machine's first call, then with the kernels on disk
    cat /tmp/w/part_aa .wmlx/part_ab > /tmp/w/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site \
        /tmp/w/mlx-0.32.4-*.whl /tmp/w/mlx_cuda_13-*.whl || exit 1
    A="--architecture $D/architecture.json"
    bench speed mlx $A --features $D/protein_100.npz $D/protein_384.npz
    MLX_MAX_OPS_PER_BUFFER=200 MLX_CUDA_GRAPH_CACHE_SIZE=1000 bench speed mlx $A --features $D/protein_100.npz $D/protein_384.npz
    bench speed mlx $A --steps 2 --repeats 1 --features $D/protein_100.npz $D/protein_384.npz
    bench speed mlx $A --steps 2 --recycles 0 --repeats 1 --features $D/protein_384.npz
    du -sh $MLX_PTX_CACHE_DIR; tail -n 5 /tmp/bench.err ;;
screen)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site .whlboto/*.whl || exit 1
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 250 > "${OUT:-/tmp/out}/gpu_busy.csv" & smi=$!
    bench screen mlx --architecture $D/architecture.json --budget-s ${BUDGET:-240} --features $D/screen/*.npz
    kill $smi 2>/dev/null
    tail -n 5 /tmp/bench.err ;;
memory)  # model chunks at 384 and 1,000 tokens: peak and time
    A="--architecture $D/architecture.json"
    bench speed mlx $A --repeats 1 --chunk-size 128 --features $D/protein_384.npz
    for c in 256 128; do bench speed mlx $A --repeats 1 --chunk-size $c --features $D/protein_1000.npz; done
    tail -n 5 /tmp/bench.err ;;
accuracy)  # bfloat16 against float32 at the defaults (compiled, 2 samples)
    bench accuracy mlx --architecture $D/architecture.json --precision bfloat16 --samples 2 --features $D/acc_*.npz
    tail -n 5 /tmp/bench.err ;;
esac
mkdir -p "${OUT:-/tmp/out}" && cp benchmarks/results/gpu.jsonl "${OUT:-/tmp/out}/gpu_$step.jsonl" 2>/dev/null
cp /tmp/bench.err "${OUT:-/tmp/out}/bench_$step.err" 2>/dev/null
exit 0
