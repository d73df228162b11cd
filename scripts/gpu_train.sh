#!/usr/bin/env bash
# Train the detector on a lent GPU machine within a fixed time (../shared/gpu/README.md).
#
# The GPU machine has torch but not PyAV, and what travels to it is capped at 64 MiB, so the training
# frames go as packed simulator folders (`casaflow pack-dataset`: one frame a second, ~3 MB per seed) with
# PyAV and pydantic taken from the Ray bundle (~27 MB):
#
#   bash scripts/gpu_train.sh prepare data/sim/seed101 data/sim/seed102 ...   # here: fills .gpu-train/
#   bash scripts/gpu_train.sh run OUT SECONDS [train-detector options]         # there, with carry=[".gpu-train"]
#
# `prepare` keeps one frame in FRAME_STEP (default 25, one a second; 50 fits 22 seeds in the 64 MiB).
# `run` measures the GPU's training rate in a 60-step probe, then sets --epochs so that the warm-up and the
# cosine decay end within SECONDS; detector.pt, checkpoint.pt and the logs land in OUT.
set -euo pipefail
mode=${1:?usage: gpu_train.sh prepare DIR... | run OUT SECONDS [options]}
shift
case $mode in
prepare)
  mkdir -p .gpu-train
  for dir in "$@"; do
    .venv/bin/casaflow pack-dataset "$dir" --out ".gpu-train/$(basename "$dir")" --frame-step "${FRAME_STEP:-25}" --crf 23
  done
  site=$(mktemp -d)
  tar -C "$site" -xJf .gpu/site.tar.xz
  tar -C "$site" -cJf .gpu-train/site.tar.xz av av.libs pydantic pydantic_core annotated_types typing_inspection
  rm -rf "$site"
  du -sh .gpu-train
  ;;
run)
  out=${1:?OUT} seconds=${2:?SECONDS}
  shift 2
  site=/tmp/gpu-train-site
  if [ ! -f $site/.ok ]; then mkdir -p $site && tar -C $site -xJf .gpu-train/site.tar.xz && touch $site/.ok; fi
  export PYTHONPATH=$PWD:$site PYTHONUNBUFFERED=1
  work=/tmp/gpu-train
  rm -rf $work/probe $work/run
  mkdir -p "$out" $work/cache $work/probe $work/run
  ln -s $work/cache $work/probe/frame_cache
  ln -s $work/cache $work/run/frame_cache
  data=(.gpu-train/*/)
  train() { python3 -m cluster.cli train-detector --data "${data[@]}" --frame-step 1 --device "${DEVICE:-cuda}" --eval-every 0 "$@"; }
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt" || true
  train --out $work/probe --epochs 1 --max-steps 60 "$@" 2>&1 | tee "$out/probe.log"
  rate=$(grep -o '[0-9.]* img/s' "$out/probe.log" | tail -1 | cut -d' ' -f1)
  samples=$(grep -o '[0-9]* samples/epoch' "$out/probe.log" | head -1 | cut -d' ' -f1)
  epochs=$(python3 -c "print(max(1, int($seconds * $rate * 0.9 / $samples)))")
  echo "probe: $rate images/s, $samples samples per epoch -> $epochs epochs in ${seconds} s" | tee -a "$out/probe.log"
  train --out $work/run --epochs "$epochs" "$@" 2>&1 | tee "$out/train.log" || true
  cp $work/run/*.pt "$out/" 2>/dev/null || true
  ;;
*)
  echo "usage: gpu_train.sh prepare DIR... | run OUT SECONDS [options]" >&2
  exit 2
  ;;
esac
