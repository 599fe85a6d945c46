#!/usr/bin/env bash
# Compare LeNet-5 / MNIST training throughput: Kindling vs the PyTorch reference.
#
# Usage: bench/lenet5_compare.sh [STEPS]        (default STEPS=300)
# Env overrides: BATCH_SIZE (64), THREADS (2), WARMUP (20, PyTorch side)
#
# Both sides pre-load their batches and time only forward+backward+optimizer
# steps; each prints one JSON object on its last stdout line. The output below
# is Markdown, suitable for pasting into docs/benchmarks.md.
# Run on an otherwise idle machine: other CPU load distorts the figures a lot.
set -euo pipefail

STEPS="${1:-300}"
BATCH_SIZE="${BATCH_SIZE:-64}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-20}"

case "$STEPS" in
  ''|*[!0-9]*|0|0*) echo "usage: $0 [STEPS]  (STEPS must be a positive integer)" >&2; exit 2 ;;
esac

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

VENV_PY="$REPO_ROOT/.venv/bin/python"
if [[ ! -x "$VENV_PY" ]]; then
  cat >&2 <<MSG
error: Python venv not found at $REPO_ROOT/.venv
Create it with:
  cd $REPO_ROOT && python3 -m venv .venv && .venv/bin/pip install torch numpy
MSG
  exit 1
fi

# JSON parsing helper (python3, no jq). Falls back to the venv interpreter.
if command -v python3 >/dev/null 2>&1; then JSON_PY=python3; else JSON_PY="$VENV_PY"; fi

# json_field KEY  <<< "$output"   -> value of KEY in the last non-empty stdout line
json_field() {
  "$JSON_PY" -c '
import json, sys
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
if not lines:
    sys.exit("no output")
d = json.loads(lines[-1])
v = d.get(sys.argv[1])
print("n/a" if v is None else v)
' "$1"
}

# ratio A B -> "A/B" with 2 decimals and an x suffix (n/a if either is missing)
ratio() {
  "$JSON_PY" -c '
import sys
try:
    a, b = float(sys.argv[1]), float(sys.argv[2])
    print(f"{a / b:.2f}x")
except (ValueError, ZeroDivisionError):
    print("n/a")
' "$1" "$2"
}

PT_CMD=("$VENV_PY" bench/pytorch/lenet5.py --steps "$STEPS" --batch-size "$BATCH_SIZE" --threads "$THREADS" --warmup "$WARMUP")
KD_CMD=(cargo run --release -p kindling-cli -- bench lenet5 --steps "$STEPS" --batch-size "$BATCH_SIZE" --threads "$THREADS" --json)

# Build Kindling first so compile time/noise is out of the way of both runs.
echo ">> building kindling-cli (release)" >&2
KD_OK=1
if ! cargo build --release -p kindling-cli >&2; then
  echo "warning: cargo build failed; Kindling side will be reported as n/a" >&2
  KD_OK=0
fi

echo ">> ${PT_CMD[*]}" >&2
PT_OUT=""
PT_OK=1
if ! PT_OUT="$("${PT_CMD[@]}")"; then
  echo "warning: PyTorch benchmark failed" >&2
  PT_OK=0
fi

KD_OUT=""
if [[ $KD_OK -eq 1 ]]; then
  echo ">> ${KD_CMD[*]}" >&2
  if ! KD_OUT="$("${KD_CMD[@]}")"; then
    echo "warning: Kindling benchmark failed (does 'kindling bench lenet5' exist yet?)" >&2
    KD_OK=0
  fi
fi

field_or_na() {  # field_or_na OK OUTPUT KEY
  if [[ "$1" -eq 1 ]]; then json_field "$3" <<<"$2" 2>/dev/null || echo "n/a"; else echo "n/a"; fi
}

PT_IPS="$(field_or_na $PT_OK "$PT_OUT" train_images_per_sec)"
PT_RSS="$(field_or_na $PT_OK "$PT_OUT" peak_rss_mb)"
PT_MS="$(field_or_na $PT_OK "$PT_OUT" ms_per_step)"
PT_VER="$(field_or_na $PT_OK "$PT_OUT" torch_version)"
KD_IPS="$(field_or_na $KD_OK "$KD_OUT" train_images_per_sec)"
KD_RSS="$(field_or_na $KD_OK "$KD_OUT" peak_rss_mb)"
KD_MS="$(field_or_na $KD_OK "$KD_OUT" ms_per_step)"

IPS_RATIO="$(ratio "$KD_IPS" "$PT_IPS")"
RSS_RATIO="$(ratio "$KD_RSS" "$PT_RSS")"

CPU_MODEL="$(grep -m1 -E '^(model name|Hardware|Processor)' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^[[:space:]]*//' || true)"
[[ -n "$CPU_MODEL" ]] || CPU_MODEL="unknown ($(uname -m))"
NCPU="$(nproc 2>/dev/null || echo '?')"
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
RUSTC_VER="$(rustc --version 2>/dev/null || echo unknown)"

cat <<MD
### LeNet-5 / MNIST training, Kindling vs PyTorch ($(date -u '+%Y-%m-%d'))

- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- CPU: ${CPU_MODEL} (${NCPU} logical CPUs visible)
- Kindling commit: ${GIT_REV}; ${RUSTC_VER}; PyTorch ${PT_VER}
- Settings: steps=${STEPS}, batch size=${BATCH_SIZE}, threads=${THREADS}, Adam lr 1e-3, ReLU + max-pool

| Framework | train images/s | ms/step | peak RSS (MB) |
|-----------|---------------:|--------:|--------------:|
| Kindling  | ${KD_IPS} | ${KD_MS} | ${KD_RSS} |
| PyTorch   | ${PT_IPS} | ${PT_MS} | ${PT_RSS} |

Ratio kindling/pytorch: throughput **${IPS_RATIO}**, peak RSS **${RSS_RATIO}**.

Commands:

\`\`\`
${KD_CMD[*]}
${PT_CMD[*]#"$REPO_ROOT/"}
\`\`\`
MD

# Non-zero exit if either side is missing, but only after printing what we have.
[[ $PT_OK -eq 1 && $KD_OK -eq 1 ]]
