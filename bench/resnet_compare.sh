#!/usr/bin/env bash
# Training throughput of `kindling lab resnet` against the same network in
# PyTorch (bench/pytorch/resnet.py), per depth, residual variant, batch 128.
#
# Usage: bench/resnet_compare.sh [DEPTHS]        (default DEPTHS="8 20 56")
# Env overrides: THREADS (2), IMAGES (1280: Kindling trains one epoch of this many)
#
# Kindling's figure is the run's train_images_per_sec (steps only, no data
# loading or evaluation); PyTorch's times 20 steps after 3 warm-up steps on
# random data. Needs Fashion-MNIST in the data root (`kindling data fetch
# fashion-mnist`) and .venv with torch. Run on an otherwise idle machine.
set -euo pipefail
DEPTHS="${1:-8 20 56}"
THREADS="${THREADS:-2}"
IMAGES="${IMAGES:-1280}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
K="${CARGO_TARGET_DIR:-target}/release/kindling"
[[ -x "$K" ]] || cargo build --release -p kindling-cli
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
echo "| depth | Kindling images/s | PyTorch images/s | ratio |"
echo "| ---: | ---: | ---: | ---: |"
for d in $DEPTHS; do
  k=$("$K" lab resnet --depth "$d" --residual --limit "$IMAGES" --test-limit 100 --epochs 1 \
        --threads "$THREADS" --json --out "$OUT/k$d" 2>/dev/null | tail -1 |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)["runs"][0]["train_images_per_sec"], 1))')
  p=$(.venv/bin/python bench/pytorch/resnet.py --depth "$d" --threads "$THREADS" | tail -1 |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)["train_images_per_sec"], 1))')
  r=$(python3 -c "print(f'{$k / $p:.2f}')")
  echo "| $d | $k | $p | $r |"
done
