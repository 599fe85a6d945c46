#!/usr/bin/env python3
"""Scores a `kindling lab translate` run's held-out translations with the
`sacrebleu` package itself and compares with what Kindling reported.

For every model directory in the run (MODEL-DIRECTION/), reads
translations.tsv (source, reference, greedy, beam) and results.json, and
computes sacreBLEU's corpus BLEU with tokenize="zh" and its default chrF
(character 6-grams, beta 2) on the same strings. Prints both and the
difference; exits 1 if any score differs by more than 1e-9.

    .venv/bin/python tools/check_translate_bleu.py runs/translate
"""
import csv
import json
import sys
from pathlib import Path

import sacrebleu


def main(run: Path) -> int:
    worst = 0.0
    dirs = sorted(d for d in run.iterdir() if (d / "translations.tsv").is_file())
    if not dirs:
        print(f"{run}: no MODEL-DIRECTION/translations.tsv", file=sys.stderr)
        return 2
    print(f"sacrebleu {sacrebleu.__version__}")
    for d in dirs:
        with open(d / "translations.tsv", encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        refs = [r[1] for r in rows]
        ours = json.loads((d / "results.json").read_text())
        for col, how in [(2, "greedy"), (3, "beam")]:
            hyps = [r[col] for r in rows]
            bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score
            chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
            kb = ours[how]["bleu"]["score"]
            kc = ours[how]["chrf"]["score"]
            worst = max(worst, abs(bleu - kb), abs(chrf - kc))
            print(
                f"{d.name:<34} {how:<6} BLEU sacrebleu {bleu:.6f} kindling {kb:.6f} (diff {bleu - kb:+.1e})"
                f"  chrF sacrebleu {chrf:.6f} kindling {kc:.6f} (diff {chrf - kc:+.1e})  [{len(rows)} pairs]"
            )
    print(f"largest difference: {worst:.3e}")
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/translate")))
