#!/usr/bin/env bash
# Tokenizer encode throughput (MB/s, one thread, whole text, best of N):
# Kindling (`kindling bench tokenizer`, Hugging Face's tokenizers crate with
# fancy-regex) against Python tiktoken and Python tokenizers on the same
# text, back to back. Prints Markdown for docs/benchmarks.md, including
# whether both sides produced the same number of tokens.
#
# Usage: bench/tokenizer_compare.sh [REPEAT]     (default 5)
# Needs the venv (.venv with tiktoken and tokenizers) and the shared data
# beside the repository (DATA=../shared/data, or set DATA).
set -euo pipefail
REPEAT="${1:-5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
DATA="${DATA:-$ROOT/../shared/data}"
if [[ ! -x "$PY" ]]; then
  echo "error: no venv at $ROOT/.venv; create it: python3 -m venv .venv && .venv/bin/pip install tiktoken tokenizers" >&2
  exit 1
fi
TOK="$DATA/tokenizers"
if [[ ! -d "$TOK" ]]; then
  echo "error: $TOK not found; set DATA to the folder holding tokenizers/" >&2
  exit 1
fi
cargo build --release -p kindling-cli >&2
K="$ROOT/target/release/kindling"

# Two texts: English prose, and the parity fixture's texts (Chinese, code,
# emoji, digits, whitespace runs, CRLF...) repeated to about 1 MB.
SHAKESPEARE="$ROOT/data/shakespeare/input.txt"
MIXED="$(mktemp /tmp/kindling-mixed-XXXXXX.txt)"
trap 'rm -f "$MIXED"' EXIT
"$PY" - "$MIXED" <<'PY'
import json, sys
fx = json.load(open("crates/kindling-data/tests/fixtures/tokenizer_parity.json", encoding="utf-8"))
chunk = "\n".join(t["text"] for t in fx["texts"]) + "\n"
n = 1_000_000 // len(chunk.encode("utf-8")) + 1
open(sys.argv[1], "w", encoding="utf-8", newline="").write(chunk * n)
PY

field() { python3 -c 'import json,sys; d=json.loads([l for l in sys.stdin.read().splitlines() if l.strip()][-1]); v=d.get(sys.argv[1]); print("n/a" if v is None else (f"{v:.2f}" if isinstance(v,float) else v))' "$1"; }
ratio() { python3 -c 'import sys
try: print(f"{float(sys.argv[1])/float(sys.argv[2]):.2f}x")
except Exception: print("n/a")' "$1" "$2"; }

# name | Kindling spec | reference lib | reference spec
ROWS=(
  "gpt2 (r50k_base)|$TOK/tiktoken/r50k_base.tiktoken|tiktoken|r50k_base"
  "cl100k_base|$TOK/tiktoken/cl100k_base.tiktoken|tiktoken|cl100k_base"
  "o200k_base|$TOK/tiktoken/o200k_base.tiktoken|tiktoken|o200k_base"
  "gpt2 (encoder.json + vocab.bpe)|$TOK/gpt2|tokenizers|$TOK/gpt2"
  "qwen3 (tokenizer.json)|$TOK/qwen3|tokenizers|$TOK/qwen3/tokenizer.json"
)

cat <<MD
### Tokenizer encode throughput, $(date -u '+%Y-%m-%d %H:%M') UTC

- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), one thread; commit $(git rev-parse --short HEAD)
- $("$PY" -c 'import tiktoken, tokenizers; print(f"Python tiktoken {tiktoken.__version__}, Python tokenizers {tokenizers.__version__}")'); Kindling: tokenizers crate 0.22 (fancy-regex)
- Each figure: the whole text encoded in one call, best of $REPEAT; MB = 10^6 bytes of UTF-8.

| tokenizer | text | Kindling MB/s | reference | reference MB/s | Kindling / reference | same token count |
|---|---|---:|---|---:|---:|---|
MD
for text in "shakespeare:$SHAKESPEARE" "mixed:$MIXED"; do
  tname="${text%%:*}"; tfile="${text#*:}"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r name kspec lib rspec <<<"$row"
    KJ=$("$K" bench tokenizer --tokenizer "$kspec" --data "$tfile" --repeat "$REPEAT" --json 2>/dev/null)
    RJ=$("$PY" bench/tokenizers_ref.py --lib "$lib" --tokenizer "$rspec" --file "$tfile" --repeat "$REPEAT" --data-dir "$DATA")
    k=$(field encode_mb_per_sec <<<"$KJ"); r=$(field encode_mb_per_sec <<<"$RJ")
    kt=$(field tokens <<<"$KJ"); rt=$(field tokens <<<"$RJ")
    same=$([[ "$kt" == "$rt" ]] && echo "yes ($kt)" || echo "NO ($kt vs $rt)")
    echo "| $name | $tname | $k | Python $lib | $r | $(ratio "$k" "$r") | $same |"
  done
done
echo
echo "Commands: \`kindling bench tokenizer --tokenizer SPEC --data FILE --repeat $REPEAT --json\`; \`.venv/bin/python bench/tokenizers_ref.py --lib tiktoken|tokenizers --tokenizer SPEC --file FILE --repeat $REPEAT\`."
