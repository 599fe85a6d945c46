#!/usr/bin/env bash
# Word vectors, Kindling vs gensim (the anchor of `kindling lab word2vec`):
# the same tokenized corpus (Kindling writes it with --dump-corpus, gensim
# reads it), the same settings (skip-gram, negative 5, window 5, dim 100,
# min-count 5, sample 1e-3, lr 0.025 -> 0.0001, 5 epochs), 2 threads each.
# Reports training words/s and their ratio, and the analogy accuracy and
# Spearman correlations side by side; then scores gensim's saved vectors
# with Kindling's scorer (`lab analogy --evaluate`), which must give
# gensim's own numbers. Training runs alternate, REPS of each; the table
# shows the median rate. Prints Markdown for docs/lab-2.md and
# docs/benchmarks.md. Run on an otherwise idle machine.
#
# Needs the data sets fetched (word-vectors, alpaca, hh-rlhf, shakespeare):
#   for d in word-vectors alpaca hh-rlhf shakespeare; do kindling data fetch $d --from ../shared/data; done
# Usage: bench/word2vec_compare.sh [OUT_DIR] [REPS]   (defaults /tmp/word2vec-bench, 2)
set -euo pipefail
OUT="${1:-/tmp/word2vec-bench}"
REPS="${2:-2}"
THREADS="${THREADS:-2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
if [[ ! -x "$PY" ]]; then
  echo "error: no venv at $ROOT/.venv; create it: python3 -m venv .venv && .venv/bin/pip install gensim" >&2
  exit 1
fi
[[ -n "${SKIP_BUILD:-}" ]] || cargo build --release -p kindling-cli >&2
K="$ROOT/target/release/kindling"
[[ -n "${CARGO_TARGET_DIR:-}" ]] && K="$CARGO_TARGET_DIR/release/kindling"
mkdir -p "$OUT"
WV="$("$K" data list --json 2>/dev/null | python3 -c 'import json,sys
d=json.loads(sys.stdin.read().splitlines()[-1])
print([x for x in d["datasets"] if x["name"]=="word-vectors"][0]["dir"])')"
TESTS=(--questions "$WV/questions-words.txt" --wordsim "$WV/wordsim353.tsv" --simlex "$WV/simlex999.txt")

for r in $(seq 1 "$REPS"); do
  echo "run $r of $REPS: kindling" >&2
  /usr/bin/time -f "%e s wall, %U s user" "$K" lab word2vec --threads "$THREADS" --dump-corpus "$OUT/corpus.txt" \
    --out "$OUT/kindling-$r" --force --json "${TESTS[@]}" > "$OUT/kindling-$r.json" 2> "$OUT/kindling-$r.log"
  tail -1 "$OUT/kindling-$r.log" >&2
  echo "run $r of $REPS: gensim" >&2
  /usr/bin/time -f "%e s wall, %U s user" "$PY" bench/word2vec_gensim.py "$OUT/corpus.txt" --workers "$THREADS" \
    --save "$OUT/gensim-$r.txt" "${TESTS[@]}" > "$OUT/gensim-$r.json" 2> "$OUT/gensim-$r.log"
  tail -1 "$OUT/gensim-$r.log" >&2
done
"$K" lab analogy --vectors "$OUT/gensim-1.txt" --evaluate --json "${TESTS[@]}" \
  > "$OUT/gensim-1-by-kindling.json" 2> "$OUT/gensim-1-by-kindling.log"

python3 - "$OUT" "$REPS" "$THREADS" <<'EOF'
import json, statistics, sys
out, reps, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
load = lambda p: json.loads(open(p).read().splitlines()[-1])
k = [load(f"{out}/kindling-{r}.json") for r in range(1, reps + 1)]
g = [load(f"{out}/gensim-{r}.json") for r in range(1, reps + 1)]
x = load(f"{out}/gensim-1-by-kindling.json")
kr = statistics.median(d["words_per_sec"] for d in k)
gr = statistics.median(d["words_per_sec"] for d in g)
print(f"Corpus: {k[0]['words']:,} words, vocabulary {k[0]['vocab']:,} (gensim {g[0]['vocab']:,}); {threads} threads; {reps} runs each, alternating.\n")
print("| | Kindling | gensim | Kindling / gensim |")
print("| --- | ---: | ---: | ---: |")
print(f"| training words/s (median) | {kr:,.0f} | {gr:,.0f} | {kr / gr:.2f}x |")
each = lambda ds, key, fmt: ", ".join(fmt(d[key]) for d in ds)
rate = lambda v: f"{v:,.0f}"
secs = lambda v: f"{v:.1f}"
print(f"| training words/s (each run) | {each(k, 'words_per_sec', rate)} | {each(g, 'words_per_sec', rate)} | |")
print(f"| training seconds (each run) | {each(k, 'train_seconds', secs)} | {each(g, 'train_seconds', secs)} | |")
for key, name in [("analogy_accuracy", "analogy accuracy, %"), ("wordsim_spearman", "WordSim-353 Spearman"), ("simlex_spearman", "SimLex-999 Spearman")]:
    scale = 100 if key == "analogy_accuracy" else 1
    fmt = (lambda v: f"{v * scale:.2f}") if scale == 100 else (lambda v: f"{v:.4f}")
    print(f"| {name} (each run) | {each(k, key, fmt)} | {each(g, key, fmt)} | |")
print(f"| analogy questions answered / skipped | {k[0]['analogy_answered']} / {k[0]['analogy_skipped']} | {g[0]['analogy_answered']} / {g[0]['analogy_skipped']} | |")
print()
print("gensim's vectors (run 1) scored by gensim and by Kindling (`lab analogy --evaluate`):\n")
print("| | gensim's scorer | Kindling's scorer |")
print("| --- | ---: | ---: |")
print(f"| analogy accuracy | {g[0]['analogy_accuracy']:.6f} | {x['analogy_accuracy']:.6f} |")
print(f"| questions answered | {g[0]['analogy_answered']} | {x['analogy_answered']} |")
print(f"| WordSim-353 Spearman | {g[0]['wordsim_spearman']:.6f} | {x['wordsim_spearman']:.6f} |")
print(f"| SimLex-999 Spearman | {g[0]['simlex_spearman']:.6f} | {x['simlex_spearman']:.6f} |")
same = all(a["answered"] == b["answered"] and abs(a["accuracy"] - b["accuracy"]) < 1e-12
           for a, b in zip(g[0]["analogy_sections"], x["analogy_sections"]))
print(f"\nPer-section accuracies identical in all {len(x['analogy_sections'])} sections: {'yes' if same else 'NO'}")
EOF
