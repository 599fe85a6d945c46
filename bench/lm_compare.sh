#!/usr/bin/env bash
# SmolLM2-135M-Instruct (f32 weights dequantized from the shared Q4_1 GGUF):
# prefill tokens/s and KV-cached greedy generation tokens/s, Kindling
# (`kindling bench lm`) against transformers (tools/gen_smollm2_bench.py,
# PyTorch f32, both attention implementations), same prompt length, same
# number of new tokens, 2 threads, interleaved A B A B so both see the same
# machine. Prints one JSON line per run; medians of 3 inside each run.
#
# Usage: bench/lm_compare.sh [ROUNDS]   (default 2)
# Needs the venv (.venv with torch transformers gguf accelerate) and the
# shared data beside the repository (DATA=../shared/data, or set DATA).
set -euo pipefail
ROUNDS="${1:-2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${DATA:-$ROOT/../shared/data}"
M="$DATA/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -f "$M" ]] || { echo "error: $M not found; set DATA" >&2; exit 1; }
[[ -x .venv/bin/python ]] || { echo "error: no .venv; pip install torch transformers gguf accelerate" >&2; exit 1; }
cargo build --release -p kindling-cli >&2
for r in $(seq "$ROUNDS"); do
  echo "# round $r, load $(cut -d' ' -f1 /proc/loadavg)"
  echo -n "kindling      "; target/release/kindling bench lm --model "$M" --threads 2 --prompt-tokens 128 --new-tokens 64 --json 2>/dev/null | tail -1
  echo -n "transformers  "; .venv/bin/python tools/gen_smollm2_bench.py --prompt-tokens 128 --new-tokens 64 2>/dev/null | tail -1
  echo -n "tf eager      "; .venv/bin/python tools/gen_smollm2_bench.py --prompt-tokens 128 --new-tokens 64 --attn eager 2>/dev/null | tail -1
done
