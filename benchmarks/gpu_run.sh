#!/usr/bin/env bash
# One command for a short loan of one GPU (docs/training.md, "Short runs on a GPU"):
#
#   python scripts/pack_training_data.py           # once, where the shared data is: -> packed/
#   bash benchmarks/gpu_run.sh OUT_DIR             # on the GPU machine, from the checkout: about 9 minutes
#   bash benchmarks/gpu_run.sh --dry-run OUT_DIR   # the same steps on the CPU, tiny settings, a few minutes
#
# Steps, each logged and timed, each run even when an earlier one failed:
#   a. the tests that exercise CUDA (pytest -m cuda, and MATLAB bicubic on the GPU);
#   b. whole-image x4 upscaling of a 192 x 192 input: CiaoSR fast and reference, LIIF fast
#      and reference, LTE, in fp32 and bf16 (benchmarks/decoder_speed.py);
#   c. training edsr-baseline-ciaosr (configs/edsr-baseline-ciaosr-short-gpu.yaml: encoder
#      from the shipped official LIIF EDSR-baseline, bf16, packed data) for the minutes
#      left, through train.max_minutes;
#   d. evaluating the trained model and the shipped LIIF on the packed Set5, Set14 and
#      B100 / Urban100 subsets at x2, x3, x4.
# The time left for each step is computed from the start. OUT_DIR receives at most 8 files:
#   gpu_run.log, steps.tsv, summary.md, decoder_speed.json, train_metrics.jsonl,
#   edsr-baseline-ciaosr.safetensors (best validation, else last), eval_ciaosr.json, eval_liif.json.
# The run folder itself (training states) is in WORK_DIR (default: a new folder under /tmp).
#
# Exit status 0 when every step ran and passed, 1 otherwise (steps.tsv says which).
# Settings (environment): GPU_RUN_SECONDS (total, default 540; dry run 360), PACK_DIR
# (default packed/), PYTHON (default python3), WORK_DIR, GPU_RUN_DRY=1 (same as --dry-run).
set -u -o pipefail   # no -e: a failed step is logged and the next one runs

DRY=${GPU_RUN_DRY:-0}
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
if [ $# -ne 1 ]; then echo "usage: $0 [--dry-run] OUT_DIR" >&2; exit 2; fi
OUT=$1
REPO=$(cd "$(dirname "$0")/.." && pwd)
PACK=${PACK_DIR:-$REPO/packed}
PY=${PYTHON:-python3}
if [ "$DRY" = 1 ]; then BUDGET=${GPU_RUN_SECONDS:-360}; else BUDGET=${GPU_RUN_SECONDS:-540}; fi
T0=$(date +%s)

if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    echo "error: $OUT exists and is not empty (give a new folder: nothing is replaced)" >&2; exit 2
fi
if [ ! -f "$PACK/MANIFEST.json" ]; then
    echo "error: no packed data in $PACK (run: python scripts/pack_training_data.py, or set PACK_DIR)" >&2; exit 2
fi
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
WORK=${WORK_DIR:-$(mktemp -d /tmp/ciaosr-gpu-run.XXXXXX)}
mkdir -p "$WORK"
exec > >(tee -a "$OUT/gpu_run.log") 2>&1
TEE_PID=$!
cd "$REPO" || exit 2

left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
printf 'step\texit\tseconds\n' > "$OUT/steps.tsv"
# step NAME TIMEOUT_S COMMAND...: run, log, record; never stops the script.
step() {
    local name=$1 limit=$2; shift 2
    if [ "$limit" -lt 5 ]; then
        echo "=== $name: skipped, ${limit} s left for it"; printf '%s\tskipped\t0\n' "$name" >> "$OUT/steps.tsv"; return
    fi
    echo "=== $name (at most ${limit} s; $(left) s of ${BUDGET} s left) $(date -u +%H:%M:%S)"
    local t=$(date +%s)
    timeout --signal=TERM --kill-after=20 "$limit" "$@"
    local rc=$?
    echo "=== $name: exit $rc after $(( $(date +%s) - t )) s"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t ))" >> "$OUT/steps.tsv"
}

echo "gpu_run.sh $( [ "$DRY" = 1 ] && echo '(dry run) ')started $(date -u '+%Y-%m-%d %H:%M:%S') UTC; budget ${BUDGET} s"
echo "checkout $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git')); pack $PACK; work $WORK"
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none"

# imagecodecs (16-bit PNG/TIFF only) may travel as a wheel in the pack (pack_training_data.py --wheels).
if ! "$PY" -c "import imagecodecs" 2>/dev/null; then
    if ls "$PACK"/wheels/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$WORK/site" "$PACK"/wheels/*.whl && export PYTHONPATH="$WORK/site"
    else
        echo "note: imagecodecs is missing (ciaosr needs it only for 16-bit PNG/TIFF files)"
    fi
fi
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"$PY" -c "import torch, ciaosr; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
'|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU', '| ciaosr', ciaosr.__version__)"

EVAL_ROOT=$PACK/datasets
EVAL_SETS=$("$PY" -c "import json, sys; print(' '.join(json.load(open(sys.argv[1]))['eval_sets']))" "$PACK/MANIFEST.json")
if [ "$DRY" = 1 ]; then
    # Every command and path of the real run, on a CPU: tiny crops of two Set5 images to
    # validate and evaluate on, small training steps, fp32 speed rows only.
    EVAL_ROOT=$WORK/dry-data; EVAL_SETS=Set5
    "$PY" - "$PACK/datasets/Set5/HR" "$EVAL_ROOT/Set5/HR" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
src, dst = map(Path, sys.argv[1:])
dst.mkdir(parents=True, exist_ok=True)
for p in sorted(src.glob("*.png"))[:2]:
    with Image.open(p) as im:
        x, y = (im.width - 96) // 2, (im.height - 96) // 2
        im.crop((x, y, x + 96, y + 96)).save(dst / p.name)
EOF
    DEVICE=cpu; SIZES=16; REPEATS=1; PRECISIONS=fp32; EVAL_SCALES="4"
    TRAIN_SET=(--set device=cpu --set train.batch_size=2 --set data.lr_patch=24 --set data.num_queries=256
               --set data.num_workers=1 --set "val.datasets=[$EVAL_ROOT/Set5]" --set train.log_every=5)
    EVAL_RESERVE=90; STOP_RESERVE=40; MIN_TRAIN=20; MAX_TRAIN=30
else
    DEVICE=cuda; SIZES=192; REPEATS=3; PRECISIONS="fp32 bf16"; EVAL_SCALES="2 3 4"
    TRAIN_SET=()
    EVAL_RESERVE=120; STOP_RESERVE=45; MIN_TRAIN=150; MAX_TRAIN=100000
fi
# Steps a and b get at most 2 minutes each, and leave training at least MIN_TRAIN seconds.

# a. the CUDA tests (they skip without a GPU: the dry run checks that they are collected)
step tests "$(min 120 $(( $(left) - EVAL_RESERVE - STOP_RESERVE - MIN_TRAIN - 60 )))" \
    "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_matlab_bicubic.py -k "cuda or gpu"

# b. decoder speed, whole-image x4
step decoder_speed "$(min 120 $(( $(left) - EVAL_RESERVE - STOP_RESERVE - MIN_TRAIN )))" \
    "$PY" benchmarks/decoder_speed.py --device "$DEVICE" --sizes $SIZES --repeats $REPEATS \
    --precisions $PRECISIONS --decoders ciaosr:fast ciaosr:reference liif:fast liif:reference lte \
    --json "$OUT/decoder_speed.json"

# c. training for the minutes left (validation and export after the stop: STOP_RESERVE)
TRAIN_S=$(min $MAX_TRAIN $(( $(left) - EVAL_RESERVE - STOP_RESERVE )))
MINUTES=$("$PY" -c "import sys; print(round(max(float(sys.argv[1]), 6.0) / 60, 3))" "$TRAIN_S")
RUN="$WORK/runs/edsr-baseline-ciaosr-short-gpu"
step train $(( TRAIN_S + STOP_RESERVE + 30 )) \
    "$PY" -m ciaosr train --config configs/edsr-baseline-ciaosr-short-gpu.yaml \
    --set "data_root=$PACK/datasets" --set "output_dir=$WORK/runs" --set "train.max_minutes=$MINUTES" \
    ${TRAIN_SET[@]+"${TRAIN_SET[@]}"}
[ -f "$RUN/metrics.jsonl" ] && cp "$RUN/metrics.jsonl" "$OUT/train_metrics.jsonl"
for w in best last; do
    if [ -f "$RUN/$w.safetensors" ]; then
        cp "$RUN/$w.safetensors" "$OUT/edsr-baseline-ciaosr.safetensors"; echo "exported: $w.safetensors"; break
    fi
done

# d. evaluation of the trained model and of the shipped LIIF on the packed sets
EVAL_S=$(( $(left) - 10 ))
if [ -f "$OUT/edsr-baseline-ciaosr.safetensors" ]; then
    step eval_ciaosr $(( EVAL_S * 6 / 10 )) \
        "$PY" -m ciaosr eval --model "$OUT/edsr-baseline-ciaosr.safetensors" --data-root "$EVAL_ROOT" \
        --datasets $EVAL_SETS --scales $EVAL_SCALES --device "$DEVICE" --json "$OUT/eval_ciaosr.json"
else
    echo "=== eval_ciaosr: skipped, no trained weights"; printf 'eval_ciaosr\tskipped\t0\n' >> "$OUT/steps.tsv"
fi
step eval_liif $(( $(left) - 10 )) \
    "$PY" -m ciaosr eval --model edsr-baseline-liif --data-root "$EVAL_ROOT" \
    --datasets $EVAL_SETS --scales $EVAL_SCALES --device "$DEVICE" --json "$OUT/eval_liif.json"

"$PY" benchmarks/gpu_run_summary.py "$OUT" > "$OUT/summary.md" || echo "summary failed"
cat "$OUT/summary.md"
NOT_OK=$(awk -F'\t' 'NR > 1 && $2 != "0" {printf "%s ", $1}' "$OUT/steps.tsv")
echo "gpu_run.sh finished after $(( $(date +%s) - T0 )) s; files in $OUT${NOT_OK:+; not done or failed: $NOT_OK}"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null   # the log is complete when the script returns
[ -z "$NOT_OK" ]   # exit status 1 when a step failed or was skipped
