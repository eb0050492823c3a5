#!/usr/bin/env bash
# Issue 20, acceptance 6: does a JPEG folder keep a GPU DCGAN step fed? One prepared run
# of at most ~6 minutes on one CUDA GPU (written for an H200 with 16 cores).
#
#   bash bench/gpu_data.sh       # results in bench/results/gpu/ (or in $OUT when set)
#
# Stages, each under its own time limit:
#   1. install: as bench/gpu.sh (wheels carried in .whl/ into /tmp/site, else
#      `pip install -e .` with the machine's own packages); torchvision and PIL must be
#      on the machine
#   2. make the bench's JPEG folders (10,000 and 100,000 images, bench/.cache/; one
#      process per core, ~15 s on 16 cores; reused when carried or already there)
#   3. DCGAN 64x64 RGB at batch 256, our defaults (bf16 autocast, fused Adam,
#      channels-last): the step time when each batch comes from the 100,000-image folder
#      through our loader (DataLoader workers = cores, pinned host memory) vs the same
#      step on 8 batches already in GPU memory, interleaved in blocks of 20 steps, 5
#      rounds (bench/data.py --only gpu). Target: fed within 10 % of resident.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu_data.log"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
START=$SECONDS
CORES=$(nproc)

stage() {  # stage SECONDS NAME COMMAND...: run under a limit, log its tail and status
    local limit=$1 name=$2
    shift 2
    echo "== $name (limit ${limit}s, at $((SECONDS - START))s)" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | grep -v '^W[0-9]\{4\} ' | tee -a "$LOG"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - START))s" | tee -a "$LOG"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision',
    torchvision.__version__, torch.cuda.get_device_name())"
    echo "cores: $CORES"
} 2>&1 | tee "$LOG"

install() {
    if [ -d .whl ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || return 1
    else
        python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || return 1
    fi
    python3 -c "import zoo, zoo_dcgan; print('genzoo ok')"
}
[ -d .whl ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export -f install
stage 30 install bash -c install
# the folders alone (a tiny CPU-only rate call would also make them; this is cheaper)
stage 90 folders python3 -c "
import sys; sys.path.insert(0, 'bench')
import data
for n in (10_000, 100_000):
    print(data.folder_info(data.jpeg_folder(n, $CORES)))"
stage 240 "dcgan b256 fed vs resident" python3 bench/data.py --only gpu --device cuda \
    --gpu-batch 256 --gpu-workers "$CORES" --rounds 5 --steps-per-call 20 \
    --out "$OUT/data.cuda.json"
echo "== done in $((SECONDS - START))s" | tee -a "$LOG"
