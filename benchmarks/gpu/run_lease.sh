#!/usr/bin/env bash
# One lease of the lent GPU (see docs/DEVELOPING.md for how the wheels travel), in steps sent
# back to back so the machine stays warm between them (it keeps files about 30 s after a call).
# Every step first installs what its call carried: the wheel folders .whl (OpenFold3's model and
# featuriser), .whlbt (biotite 1.6, 57 MB: a call of its own), .whlboto (boto3, which OpenFold3's
# writer imports), .whlwriter (pdbeccdutils, RDKit, lmdb), RDKit's X libraries (.xlibs), and MLX
# where .wmlx/part_ab is carried (rejoined with the staged part_aa). A fresh machine:
#   stage    (carry .wmlx/part_aa .wmlx/mlx-0.32.4-*.whl .devdata/kernels)  keep the first half
#            of mlx-cuda-13, unpack an earlier lease's kernels
#   install  (carry .whlbt .xlibs)  installs only
#   deps     (carry .whl .wmlx/part_ab .devdata/protein_100.npz .devdata/protein_384.npz)
#            OpenFold3's speed rows; with .devdata/screen_sample, its screen rate (once per
#            query, ten queries: a call of its own)
#   tune     (carry .whlboto .whlwriter .devdata/architecture.json .devdata/protein_*.npz
#            .devdata/screen_sample)  the writer's imports; bfloat16 without CUDA graphs under
#            memory limits of 8, 5 and 3 GiB; the fastest whose peak at 384 is OpenFold3's or
#            less goes to the big and screen steps; then OpenFold3's featuriser on this machine
#            (where it works, the screen featurises in workers)
#   big      (carry .devdata/protein_1000.npz .devdata/architecture.json; after tune) 1,000
#            tokens, whole and in chunks of 256, under a 30 GiB limit
#   screen   (carry .devdata/screen .devdata/architecture.json; PART=even|odd) the 200-query
#            screen through the inference task loop, half per call; every forward pass's shape
#            and time to screen_passes.jsonl
#   probe    (after tune, in the same call) a pass of 4 x 384 tokens under 8 GiB and under MLX's
#            own limit; the 384-token peak part by part at full size (bench_memory.py --full)
# Other steps, after stage, install and deps: mlx and final (speed rows as they stand), memory
# (model chunks; bfloat16 against float32 on ten featurised queries), accuracy (the latter only),
# write (bench_write_behind.py: the writer in a thread or a process beside the model;
# bench_writer.py: its scores and files apart, by torch threads).
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
# every 10 s, what a call killed at its limit must still bring back: the rows and the pass log
(while sleep 10; do mkdir -p "${OUT:-/tmp/out}"; cp benchmarks/results/gpu.jsonl "${OUT:-/tmp/out}/gpu_$1.jsonl" 2>/dev/null
    grep -s '^{"tasks"' /tmp/bench.err > "${OUT:-/tmp/out}/screen_passes.jsonl"; done) >/dev/null 2>&1 &
# stopped on exit, and writing nowhere: on this script's stdout it held a pipe from the script
# (`run_lease.sh stage | tail`) open until the call's limit (L15: 300 s lost)
trap "kill $! 2>/dev/null" EXIT
bench() { python3 benchmarks/gpu/bench_gpu.py "$@" --lease "$lease" 2>>/tmp/bench.err; }
wheels() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $site "$@"; }
install_mlx() {  # the mlx-cuda-13 wheel rejoined from part_aa (staged) and part_ab (carried)
    cat /tmp/w/part_aa .wmlx/part_ab > /tmp/w/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    wheels /tmp/w/mlx-0.32.4-*.whl /tmp/w/mlx_cuda_13-*.whl
}
D=.devdata
# X libraries RDKit's drawing module loads (pdbeccdutils imports it), absent from the GPU image:
# Debian's libxrender1, libx11-6, libxext6 and theirs (`apt-get download`), carried in .xlibs
[ -d .xlibs ] && mkdir -p /tmp/xlibs && cp -a .xlibs/. /tmp/xlibs/
[ -d /tmp/xlibs ] && export LD_LIBRARY_PATH=/tmp/xlibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for folder in .whl .whlbt .whlboto .whlwriter; do  # what this call carried
    [ -d $folder ] && { wheels $folder/*.whl || exit 1; }
done
[ -f .wmlx/part_ab ] && { install_mlx || exit 1; }
asked=${SCREEN_TUNED:-}  # the caller's SCREEN_TUNED wins over tune's choice
[ -f /tmp/best_env ] && . /tmp/best_env
SCREEN_TUNED=${asked:-${SCREEN_TUNED:-}}
case $step in
stage)
    mkdir -p /tmp/w && cp .wmlx/* /tmp/w/ && ls -la /tmp/w && nvidia-smi --query-gpu=name,memory.total --format=csv
    # kernels an earlier lease built (its mlx step's mlx_kernels.tar.gz), if carried
    [ -f .devdata/kernels/mlx_kernels.tar.gz ] && tar -xzf .devdata/kernels/mlx_kernels.tar.gz -C /tmp && du -sh /tmp/mlx_kernels
    which nsys ncu nvcc; nproc; python3 -c "import torch; print(torch.__version__)" ;;
install) ;;  # (the installs above only)
deps)  # OpenFold3's predict preset: the reference rows of this lease
    bench speed openfold3 --features $D/protein_100.npz $D/protein_384.npz
    # once per query on ten of the screen's queries (carry .devdata/screen_sample: make_screen.py --sample 10)
    [ -d $D/screen_sample ] && bench screen openfold3 --features $D/screen_sample/*.npz
    tail -n 5 /tmp/bench.err ;;
of3screen)  # (carry .devdata/screen_sample) OpenFold3's screen rate alone, when deps ran without it
    bench screen openfold3 --features $D/screen_sample/*.npz
    tail -n 5 /tmp/bench.err ;;
mlx)  # MLX's speed rows: a fresh machine's first call, then without CUDA graphs; parts profiled
    A="--architecture $D/architecture.json"
    bench speed mlx $A --features $D/protein_100.npz $D/protein_384.npz
    MLX_USE_CUDA_GRAPHS=0 bench speed mlx $A --features $D/protein_100.npz $D/protein_384.npz
    LEASE=$lease python3 - <<'PY' > /tmp/best_env  # the faster setting at 384 tokens, for later steps
import json, os
rows = [json.loads(line) for line in open("benchmarks/results/gpu.jsonl")]
mlx = [r for r in rows if r["lease"] == os.environ["LEASE"] and r["framework"] == "mlx"
       and r["n_tokens"] == 384]
best = min(mlx, key=lambda r: r["median_s"])
print("export MLX_USE_CUDA_GRAPHS=0" if "MLX_USE_CUDA_GRAPHS=0" in best.get("env", "") else "")
PY
    cat /tmp/best_env; . /tmp/best_env
    python3 benchmarks/gpu/profile_parts.py $A --features $D/protein_384.npz 2>>/tmp/bench.err \
        | sed "s/^{/{\"lease\": \"$lease\", \"env\": \"$(cat /tmp/best_env)\", /" >> "${OUT:-/tmp/out}/profile.jsonl"
    cat "${OUT:-/tmp/out}/profile.jsonl"
    tar -czf "${OUT:-/tmp/out}/mlx_kernels.tar.gz" -C /tmp mlx_kernels; ls -la "${OUT:-/tmp/out}"
    tail -n 5 /tmp/bench.err ;;
final)  # (carry .devdata/architecture.json .devdata/protein_*.npz): speed rows of the code as it stands
    A="--architecture $D/architecture.json"
    bench speed mlx $A --features $D/protein_100.npz $D/protein_384.npz
    MLX_MAX_MB_PER_BUFFER=200 bench speed mlx $A --features $D/protein_384.npz
    bench speed mlx $A --repeats 1 --chunk-size 128 --features $D/protein_384.npz
    bench speed mlx $A --precision bfloat16 --features $D/protein_100.npz $D/protein_384.npz
    bench speed mlx $A --precision bfloat16 --repeats 1 --features $D/protein_1000.npz
    MLX_USE_CUDA_GRAPHS=0 bench speed mlx $A --precision bfloat16 --features $D/protein_100.npz $D/protein_384.npz
    tar -czf "${OUT:-/tmp/out}/mlx_kernels.tar.gz" -C /tmp mlx_kernels
    tail -n 5 /tmp/bench.err ;;
screen)
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 250 > "${OUT:-/tmp/out}/gpu_busy.csv" & smi=$!
    # PART=even|odd: half the screen per call (one call cannot hold it all), as two jobs would
    # (without PART the whole screen ran into L12's 480 s limit and gave no rate: PART is required)
    case ${PART:-} in even) F="$D/screen/screen_??[02468]_*.npz" ;; odd) F="$D/screen/screen_??[13579]_*.npz" ;;
        *) echo "screen: set PART=even or PART=odd (half the screen per call)"; kill $smi; exit 1 ;; esac
    bench screen mlx --architecture $D/architecture.json --budget-s ${BUDGET:-inf} ${SCREEN_ARGS:-} \
        ${SCREEN_TUNED:-} --features $F
    grep '^{"tasks"' /tmp/bench.err > "${OUT:-/tmp/out}/screen_passes.jsonl"
    kill $smi 2>/dev/null
    # the kernels of batched shapes, which the speed rows never build: carry them to the next lease
    tar -czf "${OUT:-/tmp/out}/mlx_kernels.tar.gz" -C /tmp mlx_kernels
    tail -n 5 /tmp/bench.err ;;
tune)
    python3 -c "import lmdb, pdbeccdutils, rdkit.Chem.Draw, openfold3.core.runners.writer; print('writer imports: ok')"
    # as `inference.cuda_graphs: false` sets them (mlx_backend.cuda_settings): 20 kernels a commit
    export MLX_USE_CUDA_GRAPHS=0 MLX_MAX_OPS_PER_BUFFER=${MLX_MAX_OPS_PER_BUFFER:-20}
    A="--architecture $D/architecture.json --precision bfloat16"
    # MLX's memory limit (inference.memory_limit_gib), at which its host waits for the GPU: 8 and
    # 5 GiB cost nothing at 384 tokens in L10 (10.1 and 8.1 GiB peaks); 3 bounded nothing more (L11)
    bench speed mlx $A --repeats 3 --queue-depth 2 --memory-limit-gib 8 5 --features $D/protein_384.npz $D/protein_100.npz
    LEASE=$lease python3 - <<'PY' > /tmp/best_env  # the fastest lean setting, for later steps
import json, os
rows = [json.loads(line) for line in open("benchmarks/results/gpu.jsonl")]
ours = [r for r in rows if r["lease"] == os.environ["LEASE"] and r.get("kind") == "speed"
        and r["framework"] == "mlx"]
setting = lambda r: (r["queue_depth"], r["memory_limit_gib"])  # noqa: E731
at = {n: {setting(r): r for r in ours if r["n_tokens"] == n} for n in (100, 384)}
both = [s for s in at[384] if s in at[100]]
lean = [s for s in both if at[384][s]["peak_gib"] <= 6.65] or both  # OpenFold3's peak at 384 (L5-L9)
depth, limit = min(lean, key=lambda s: at[384][s]["median_s"] + at[100][s]["median_s"])
print(f"export MLX_USE_CUDA_GRAPHS=0 MLX_MAX_OPS_PER_BUFFER={os.environ['MLX_MAX_OPS_PER_BUFFER']}"
      f" DEPTH={depth} LIMIT={limit}")
print('export SCREEN_TUNED="--precision bfloat16 --queue-depth $DEPTH --memory-limit-gib $LIMIT"')
PY
    cat /tmp/best_env; . /tmp/best_env
    tar -czf "${OUT:-/tmp/out}/mlx_kernels.tar.gz" -C /tmp mlx_kernels
    # OpenFold3's featuriser on this machine: where it runs, the screen featurises in workers
    [ -d $D/screen_sample ] && bench featurise mlx --features $D/screen_sample/*.npz \
        && echo "export SCREEN_TUNED=\"\$SCREEN_TUNED --featurise-workers $(( $(nproc) - 2 ))\"" >> /tmp/best_env
    cat /tmp/best_env
    tail -n 30 /tmp/bench.err ;;
probe)  # (after tune, in its call) where a batched pass of large tasks and the 384-token peak go
    A="--architecture $D/architecture.json --precision bfloat16 --queue-depth $DEPTH"
    # 4 tasks of 384 tokens in one pass (the screen's dear passes): under the screen's 8 GiB
    # limit, and under MLX's own (95% of the GPU); per task, against 384 alone in tune
    bench speed mlx $A --batch 4 --memory-limit-gib 8 130 --features $D/protein_384.npz
    # the 384-token peak, part by part, at full size under the 5 GiB limit
    python3 benchmarks/bench_memory.py --features $D/protein_384.npz --compiled --precision bfloat16 \
        --memory-limit-gib 5 --full 2>>/tmp/bench.err | tee -a "${OUT:-/tmp/out}/memory.jsonl"
    # MLX commits every 100 kernels on an H200 (MLX_MAX_OPS_PER_BUFFER): what smaller commits hold
    MLX_MAX_OPS_PER_BUFFER=20 bench speed mlx $A --repeats 3 --memory-limit-gib 5 --features $D/protein_384.npz
    tar -czf "${OUT:-/tmp/out}/mlx_kernels.tar.gz" -C /tmp mlx_kernels
    tail -n 10 /tmp/bench.err ;;
big)  # a call of its own: the kernel builds of its new shapes do not fit in tune's
    A="--architecture $D/architecture.json --precision bfloat16"
    # 1,000 tokens peaked at 83 GiB whole under a 30 GiB limit (L10), before float32 triangle
    # attention bounded its scores (primitives.SCORES_BYTES): whole again, and in row chunks of 256
    bench speed mlx $A --queue-depth $DEPTH --memory-limit-gib 30 --repeats 1 --features $D/protein_1000.npz
    bench speed mlx $A --queue-depth $DEPTH --memory-limit-gib 30 --chunk-size 256 --repeats 1 \
        --features $D/protein_1000.npz
    tar -czf "${OUT:-/tmp/out}/mlx_kernels.tar.gz" -C /tmp mlx_kernels
    tail -n 10 /tmp/bench.err ;;
write)  # (after tune's installs) what files written in a thread beside the model cost its pass
    python3 benchmarks/bench_write_behind.py 2>>/tmp/bench.err
    # the writer's scores (torch, by threads) and files (Python) apart, on this machine's cores
    python3 benchmarks/bench_writer.py --threads 2 8 16 2>>/tmp/bench.err
    cp benchmarks/results/write_behind.jsonl benchmarks/results/writer.jsonl "${OUT:-/tmp/out}/" ;;
accuracy)  # (carry .devdata/architecture.json .devdata/acc_*.npz) bfloat16 against float32 alone
    bench accuracy mlx --architecture $D/architecture.json --precision bfloat16 --samples 2 \
        --features $D/acc_*.npz
    tail -n 5 /tmp/bench.err ;;
memory)  # model chunks at 384 and 1,000 tokens: peak and time; then bfloat16 against float32
    A="--architecture $D/architecture.json"
    bench speed mlx $A --repeats 1 --chunk-size 128 --features $D/protein_384.npz
    bench speed mlx $A --repeats 1 --chunk-size 256 --features $D/protein_1000.npz
    bench accuracy mlx $A --precision bfloat16 --samples 2 --features $D/acc_*.npz
    tail -n 5 /tmp/bench.err ;;
esac
mkdir -p "${OUT:-/tmp/out}" && cp benchmarks/results/gpu.jsonl "${OUT:-/tmp/out}/gpu_$step.jsonl" 2>/dev/null
cp /tmp/bench.err "${OUT:-/tmp/out}/bench_$step.err" 2>/dev/null
exit 0
