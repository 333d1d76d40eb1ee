#!/usr/bin/env bash
# Every GPU claim of docs/training.md, measured in one run (under 8 minutes on one GPU).
#
#   bash bench/gpu_check.sh --out DIR                       # CUDA: the full check
#   bash bench/gpu_check.sh --device cpu --quick --out DIR  # a reduced form on the CPU (a test runs it)
#
# Writes each part's output to DIR/<part>.txt and a summary to DIR/summary.txt; the exit
# status is that of the first part that failed (the others still run).
#   1 train_step   bench/train_step.py: fp32 (TF32 off) and TF32 eager, bf16, channels_last and
#                  fused Adam each alone, all three, with a CUDA graph, with torch.compile; the peak
#                  memory of each (batch 1, 256x256) and the largest batch that fits
#   2 launches     bench/launches.py: aten operations per step, eager against optimised (+ CUDA graph)
#   3 fit          300 steps of `trainer fit --preset paper` on synthetic shards
#   4 resume       a crashed and resumed --deterministic run against an uninterrupted one, bit for bit
#   5 deblur       bench/deblur.py at 1280x720: fp32 against bf16 (and ONNX Runtime CUDA if installed)
set -u
OUT="" DEVICE=cuda QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        *) echo "usage: bash bench/gpu_check.sh --out DIR [--device cuda|cpu] [--quick]" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "give --out DIR" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$ROOT"
STATUS=0
: > "$OUT/summary.txt"

part() {   # part NAME COMMAND...: run it, keep its output, note how it went
    local name="$1"; shift
    local start=$SECONDS
    echo "== $name: $*" | tee -a "$OUT/summary.txt"
    "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
    grep -v -i 'warn' "$OUT/$name.txt" | tail -n 12 | sed 's/^/   /' >> "$OUT/summary.txt"
    if [ $rc -ne 0 ] && [ $STATUS -eq 0 ]; then STATUS=$rc; fi
}
trainer() { "$PY" -c 'import sys, cli; sys.argv[0] = "trainer"; cli.trainer()' "$@"; }

{
    echo "device $DEVICE, quick $QUICK, $(date -u +%FT%TZ), git $(git rev-parse --short HEAD 2>/dev/null)"
    "$PY" -c 'import torch; print("torch", torch.__version__, "| cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
} >> "$OUT/summary.txt" 2>&1

if [ "$QUICK" = 1 ]; then
    # Tiny sizes, one step each: that every part runs, not how fast.
    part train_step "$PY" bench/train_step.py --device "$DEVICE" --size 16 --steps 1 --warmup 0 \
        --variants fused --threads 2
    part launches "$PY" bench/launches.py --device "$DEVICE" --tiny --size 16
    part data "$PY" bench/gpu_check.py data "$OUT/data" --photos 4 --side 64 --crop 32
    part fit trainer fit --preset tiny --ngf 8 --ndf 8 --blocks 1 --shards "$OUT/data/shards" --mix 1:0 --crop 32 \
        --batch-size 1 --steps 2 --val-limit 1 --workers 0 --no-preview --device "$DEVICE" --out "$OUT/fit-run"
    part resume "$PY" bench/gpu_check.py resume "$OUT/data" --device "$DEVICE" --preset tiny --steps 2 --crop 32
    part deblur "$PY" bench/deblur.py --device "$DEVICE" --height 36 --width 64 --frames 1 --warmup 0 \
        --precisions fp32
else
    VARIANTS=fp32,tf32,bf16,channels_last,fused,optimised,graphs,compile
    part train_step "$PY" bench/train_step.py --device "$DEVICE" --variants "$VARIANTS" --memory --max-batch
    part launches "$PY" bench/launches.py --device "$DEVICE" --cuda-graphs
    part data "$PY" bench/gpu_check.py data "$OUT/data" --photos 32 --side 320 --crop 256
    part fit trainer fit --preset paper --shards "$OUT/data/shards" --mix 1:0 --steps 300 --val-limit 4 \
        --vgg-weights "$OUT/data/vgg19.pth" --workers 2 --no-preview --device "$DEVICE" --out "$OUT/fit-run"
    part resume "$PY" bench/gpu_check.py resume "$OUT/data" --device "$DEVICE" --preset paper --steps 6
    part deblur "$PY" bench/deblur.py --device "$DEVICE" --precisions fp32,bf16,onnx
fi
echo "overall exit $STATUS; outputs in $OUT" | tee -a "$OUT/summary.txt"
exit $STATUS
