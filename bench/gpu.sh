#!/usr/bin/env bash
# GPU figures in one prepared run of at most 8 minutes on one CUDA GPU.
#
#   bash bench/gpu.sh            # results in bench/results/gpu/ (or in $OUT when set)
#
# Stages, each under its own time limit so that one failure or overrun never
# costs the others (the limits add up to 8 minutes; a typical run is shorter):
#   1. install: wheels carried in .whl/ (a genzoo wheel built with `pip wheel
#      --no-deps -w .whl .` and what the machine's image lacks: pydantic,
#      huggingface_hub 2.x, diffusers, ...) into /tmp/site; without .whl/,
#      `pip install -e .` with the machine's own packages
#   2. DCGAN 64x64 training step vs the PyTorch examples DCGAN, batch 64:
#      fp32 (PyTorch's defaults: cuDNN convolutions may use TF32), our default
#      bf16 + fused Adam + channels-last, and torch.compile with CUDA graphs
#      (mode reduce-overhead) on both sides (bench/dcgan_train.py)
#   3. the same at batch 512 (throughput vs batch size), eager only
#   4. DDPM (ddpm-mnist UNet) training step and DDIM-50 sampling vs diffusers,
#      fp32 and bf16 (bench/ddpm_vs_diffusers.py); then again with torch.compile
#      on both sides, in its own stage, since compiling the UNet takes longest
#   5. correctness on the GPU: the conformance kit for four families with
#      run.device=cuda, then `zoo build dcgan-mnist` end to end on the GPU
# Peak GPU memory per configuration is in each JSON file ("peak_gpu_mib").
# The peer DCGAN is read from --peer-repo: a checkout, a git mirror, or an
# exported copy with dcgan/main.py and a COMMIT file (default: .peer/examples).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore TORCH_LOGS=-dynamo
PEER=${PEER:-.peer/examples}
ONLY=${ONLY:-}  # a rerun of some stages: ONLY="install,ddpm,conformance on cuda"
START=$SECONDS
ZOO="python3 -m zoo"  # the console script may not be on PATH there

stage() {  # stage SECONDS NAME COMMAND...: run under a limit, log its tail and status
    local limit=$1 name=$2
    shift 2
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return; fi
    echo "== $name (limit ${limit}s, at $((SECONDS - START))s)" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | grep -v '^W[0-9]\{4\} \|^  [a-z ]*round ' | tee -a "$LOG"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - START))s" | tee -a "$LOG"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    torch.cuda.get_device_name())"
} 2>&1 | tee "$LOG"

install() {
    if [ -d .whl ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || return 1
    else
        python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || return 1
    fi
    python3 -c "import zoo, zoo_dcgan, zoo_ddpm, pydantic, diffusers, huggingface_hub as h
from zoo.core.registry import get_registry
print('genzoo ok; hub', h.__version__, '; families', ' '.join(sorted(get_registry().families)))"
}
[ -d .whl ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export -f install
stage 30 install bash -c install

stage 130 "dcgan b64" python3 bench/dcgan_train.py --device cuda --compile \
    --compile-mode reduce-overhead --peer-repo "$PEER" \
    --rounds 5 -k 20 --warmup 5 --out "$OUT/dcgan_train.cuda.json"
stage 35 "dcgan b512" python3 bench/dcgan_train.py --device cuda --batch 512 \
    --peer-repo "$PEER" --rounds 5 -k 10 --warmup 3 --out "$OUT/dcgan_train.b512.cuda.json"
# diffusers imports peft and transformers when they are installed; an image whose
# transformers refuses huggingface_hub 2.x (which genzoo needs) breaks that import,
# and the UNet needs neither, so the DDPM stages hide both from diffusers
mkdir -p /tmp/hide && printf 'import sys\nsys.modules.update(peft=None, transformers=None)\n' \
    >/tmp/hide/sitecustomize.py
HIDE=/tmp/hide${PYTHONPATH:+:$PYTHONPATH}
stage 75 "ddpm" env PYTHONPATH="$HIDE" python3 bench/ddpm_vs_diffusers.py --device cuda \
    --rounds 5 -k 10 --warmup 5 --out "$OUT/ddpm_vs_diffusers.cuda.json"
stage 120 "ddpm compiled" env PYTHONPATH="$HIDE" python3 bench/ddpm_vs_diffusers.py --device cuda --compile \
    --rounds 3 -k 10 --warmup 3 --out "$OUT/ddpm_vs_diffusers.compile.cuda.json"
stage 35 "conformance on cuda" $ZOO plugin check dcgan vae lapgan ddpm --set run.device=cuda
stage 45 "dcgan-mnist on cuda" bash -c "$ZOO build dcgan-mnist --out /tmp/gpu-dcgan &&
    $ZOO sample /tmp/gpu-dcgan -n 64 --seed 0 -o '$OUT/dcgan-mnist-gpu.png'"
echo "== done in $((SECONDS - START))s" | tee -a "$LOG"
