#!/usr/bin/env bash
# Every GPU check and benchmark of the detector in one command, for a short device lease
# (../shared/gpu/README.md): the CUDA path against the CPU, the runtime, Ray Serve, and the live pipeline.
#
#   ../shared/gpu/bundle.sh                                   # here, once: Ray and PyAV for the GPU machine
#   casaflow simulate --scenario demo --seed 7 --duration-s 50 --out /tmp/gpucity
#   # copy two cameras of it (cameras.yaml + their clips) to .gpu/city: it travels with the bundle
#   # then on the GPU machine, from the repo root:
#   bash bench/gpu_session.sh .gpu/city OUT_DIR      # SSDLITE=1: torchvision SSDlite320 beside (adds ~2 min)
set -uo pipefail
city=${1:-.gpu/city}
out=${2:-${OUT:-/tmp/gpu-out}}
mkdir -p "$out"
source .gpu/activate.sh
export RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1
step() {  # step NAME SECONDS COMMAND...: one step's output in OUT/NAME.log; a failing step does not stop the rest
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date +%T))"
  timeout "$limit" "$@" 2>&1 | grep -v -e '^INFO' -e 'DeprecationWarning' | tee "$out/$name.log"
  echo "=== $name exit ${PIPESTATUS[0]}"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision, ray, av; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'ray', ray.__version__, 'av', av.__version__)"
step check_cuda 90 python3 bench/check_cuda.py "$city/video/$(ls "$city/video" | head -1)" --frames 64
step detector_512 $([ "${SSDLITE:-0}" = 1 ] && echo 210 || echo 90) python3 bench/bench_detector.py --device cuda --input-size 512x288 --batch-sizes 128,256,512 --seconds 2 --callers 2 --stages $([ "${SSDLITE:-0}" = 1 ] || echo --skip-ssdlite)
step serve 180 python3 bench/bench_serve.py --device cuda --callers 8,32,96 --frames-per-request 8 --max-batch-frames 256 --seconds 8
step serve_2_replicas 120 python3 bench/bench_serve.py --device cuda --replicas 2 --callers 32,96 --frames-per-request 8 --max-batch-frames 256 --seconds 8
step pipeline 150 python3 bench/bench_pipeline.py --city "$city" --cameras 48,96 --seconds 20 --warmup-s 10 --device cuda
