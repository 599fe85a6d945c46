#!/usr/bin/env bash
# Character-level GPT (nanoGPT's CPU Shakespeare configuration): training
# ms/iter and KV-cache generation tokens/s, Kindling vs the PyTorch reference
# (bench/pytorch/chargpt.py), back to back in one run. Prints Markdown for
# docs/benchmarks.md. Run on an otherwise idle machine.
#
# Usage: bench/gpt_compare.sh [ITERS] [TOKENS]     (defaults 50 and 500)
set -euo pipefail
ITERS="${1:-50}"
TOKENS="${2:-500}"
THREADS="${THREADS:-2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "error: no venv at $ROOT/.venv; create it: python3 -m venv .venv && .venv/bin/pip install torch numpy" >&2
  exit 1
fi
cargo build --release -p kindling-cli >&2
field() { python3 -c 'import json,sys; d=json.loads([l for l in sys.stdin.read().splitlines() if l.strip()][-1]); v=d.get(sys.argv[1]); print("n/a" if v is None else (f"{v:.2f}" if isinstance(v,float) else v))' "$1"; }
ratio() { python3 -c 'import sys
try: print(f"{float(sys.argv[1])/float(sys.argv[2]):.2f}x")
except Exception: print("n/a")' "$1" "$2"; }

K=$(target/release/kindling bench gpt --preset shakespeare-cpu --iters "$ITERS" --generate "$TOKENS" --threads "$THREADS" --json)
P=$("$PY" bench/pytorch/chargpt.py --bench-iters "$ITERS" --threads "$THREADS" 2>/dev/null)
PS=$("$PY" bench/pytorch/chargpt.py --bench-iters "$ITERS" --threads "$THREADS" --sdpa 2>/dev/null)
PG=$("$PY" bench/pytorch/chargpt.py --bench-iters 0 --generate "$TOKENS" --threads "$THREADS" 2>/dev/null)

k_ms=$(field ms_per_iter <<<"$K"); p_ms=$(field ms_per_iter <<<"$P"); ps_ms=$(field ms_per_iter <<<"$PS")
k_tps=$(field tokens_per_sec <<<"$K"); p_tps=$(field tokens_per_sec <<<"$PG")
cat <<MD
### Char-GPT (shakespeare-cpu: 4 layers, 4 heads, 128 wide, block 64, batch 12), $(date -u '+%Y-%m-%d %H:%M') UTC

- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $THREADS threads; commit $(git rev-parse --short HEAD)

| | Kindling | PyTorch (explicit attention) | PyTorch (SDPA) |
|---|---:|---:|---:|
| training ms/iter | $k_ms | $p_ms | $ps_ms |
| generation tokens/s (KV cache) | $k_tps | $p_tps | |

Ratios: training time kindling/pytorch $(ratio "$k_ms" "$p_ms") (vs SDPA $(ratio "$k_ms" "$ps_ms")); generation speed kindling/pytorch $(ratio "$k_tps" "$p_tps").

Commands: \`kindling bench gpt --preset shakespeare-cpu --iters $ITERS --generate $TOKENS --threads $THREADS --json\`; \`.venv/bin/python bench/pytorch/chargpt.py --bench-iters $ITERS [--sdpa]\`; \`.venv/bin/python bench/pytorch/chargpt.py --bench-iters 0 --generate $TOKENS\`.
MD
