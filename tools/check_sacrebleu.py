"""Check Kindling's BLEU / chrF against the `sacrebleu` package, and write
the fixture the Rust tests compare with (tests never need Python).

    .venv/bin/pip install sacrebleu            # 2.x
    .venv/bin/python tools/check_sacrebleu.py [--kindling target/release/kindling]

Segments: random strings built to hit every rule of the tokenizers (ASCII
punctuation around digits, `&amp;` entities, `<skipped>`, Python-only
whitespace such as U+001F, the code points sacreBLEU's `zh` table covers by
accident, empty lines), plus real classical/modern Chinese pairs with
words dropped, swapped and repeated. Writes
crates/kindling-train/tests/fixtures/sacrebleu.json: every segment's
tokenization under 13a / zh / char, and corpus scores for several settings,
floats as the hex of their IEEE-754 bits so the comparison is exact. With
--kindling, also runs `kindling score --json` on the same files and checks
the numbers are the same floats.
"""
import argparse
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh
from sacrebleu.tokenizers.tokenizer_char import TokenizerChar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates/kindling-train/tests/fixtures/sacrebleu.json")
CORPUS = os.path.join(ROOT, "../shared/data/classical-modern/classical-modern-subset.jsonl.gz")

WORDS = "the a cat sat on mat dog barked don't U.S. e.g. 3.14 1,000 2-3 x-ray $5 50% (it) [x] {y} @home #tag a/b".split()
PIECES = [".", ",", "-", "'", '"', "&amp;", "&lt;", "&gt;", "&quot;", "<skipped>", "\u201c", "\u2014",
          "\u2000", "\u2001", "\u2a6d", "\u2a6e", "\u2f80", "\u2f81", "\u2fa1", "\u2fa2", "\u3000", "\u00a0",
          "\u001f", "\u001c", "\u0085", "\u200b", "道", "可", "非", "常", "。", "，", "ＡＢ", "é", "Ä", "ß", "\t", "\n", " ", "  ", "-\n"]


def rand_segment(rng):
    n = rng.randint(0, 14)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            out.append(rng.choice(WORDS))
        elif r < 0.75:
            out.append(rng.choice(PIECES))
        else:
            out.append(str(rng.randint(0, 99999)) + rng.choice(["", ".", ",", "-", ".5", ",3"]))
        out.append(rng.choice([" ", " ", " ", "", "\u3000", "\u001f"]))
    s = "".join(out)
    # Lines read from files never hold "\n"; keep a few anyway (the library takes any string).
    return s if rng.random() < 0.9 else s.replace("\n", " ")


def corrupt(rng, s):
    chars = list(s)
    for _ in range(rng.randint(0, 4)):
        if not chars:
            break
        i = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.4:
            del chars[i]
        elif op < 0.7:
            chars.insert(i, chars[rng.randrange(len(chars))])
        else:
            j = rng.randrange(len(chars))
            chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def bits(x):
    return struct.pack(">d", float(x)).hex()


def segments():
    rng = random.Random(20261130)
    hyps, refs1, refs2 = [], [], []
    for _ in range(160):
        r = rand_segment(rng)
        hyps.append(corrupt(rng, r) if rng.random() < 0.7 else rand_segment(rng))
        refs1.append(r)
        refs2.append(corrupt(rng, r))
    if os.path.exists(CORPUS):
        with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
            pairs = [json.loads(next(f)) for _ in range(400)]
        for p in rng.sample(pairs, 60):
            ref = p["modern"]
            hyps.append(corrupt(rng, ref))
            refs1.append(ref)
            refs2.append(p["classical"])
    else:
        print(f"note: {CORPUS} absent, random segments only", file=sys.stderr)
    return hyps, refs1, refs2


def settings():
    out = []
    for tok in ["13a", "zh", "char", "none"]:
        out.append({"metric": "bleu", "tokenize": tok, "lowercase": False, "refs": 1})
    out.append({"metric": "bleu", "tokenize": "13a", "lowercase": True, "refs": 1})
    out.append({"metric": "bleu", "tokenize": "zh", "lowercase": False, "refs": 2})
    out.append({"metric": "chrf", "word_order": 0, "lowercase": False, "refs": 1})
    out.append({"metric": "chrf", "word_order": 2, "lowercase": False, "refs": 1})
    out.append({"metric": "chrf", "word_order": 0, "lowercase": True, "refs": 2})
    out.append({"metric": "chrf", "word_order": 2, "lowercase": False, "refs": 2})
    return out


def score(s, hyps, refs):
    rs = refs[: s["refs"]]
    if s["metric"] == "bleu":
        m = BLEU(tokenize=s["tokenize"], lowercase=s["lowercase"], force=True)
        r = m.corpus_score(hyps, rs)
        return {"score": bits(r.score), "score_float": r.score, "counts": r.counts, "totals": r.totals,
                "sys_len": r.sys_len, "ref_len": r.ref_len, "signature": str(m.get_signature())}
    m = CHRF(word_order=s["word_order"], lowercase=s["lowercase"])
    r = m.corpus_score(hyps, rs)
    return {"score": bits(r.score), "score_float": r.score, "signature": str(m.get_signature())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kindling", help="a kindling binary: also check `kindling score --json`")
    args = ap.parse_args()
    hyps, r1, r2 = segments()
    refs = [r1, r2]
    t13, tzh, tch = Tokenizer13a(), TokenizerZh(), TokenizerChar()
    toks = [{"text": s, "13a": t13(s), "zh": tzh(s), "char": tch(s)} for s in hyps + r1]
    cases = []
    for s in settings():
        s = dict(s)
        s["expected"] = score(s, hyps, refs)
        cases.append(s)
    fixture = {"sacrebleu_version": sacrebleu.__version__, "hyps": hyps, "refs": refs,
               "tokenized": toks, "cases": cases}
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=0)
    print(f"wrote {OUT}: {len(hyps)} segments, {len(cases)} settings (sacrebleu {sacrebleu.__version__})")
    for c in cases:
        print(f"  {c['metric']:5} {c.get('tokenize', 'wo=' + str(c.get('word_order')))!s:6} lc={c['lowercase']!s:5} refs={c['refs']}: {c['expected']['score_float']:.6f}")
    if args.kindling:
        check_cli(args.kindling, hyps, refs, cases)


def check_cli(binary, hyps, refs, cases):
    # Files hold one segment a line, so take segments without newlines.
    keep = [i for i in range(len(hyps)) if all("\n" not in x and "\r" not in x and "\u0085" not in x
                                                and "\u2028" not in x for x in (hyps[i], refs[0][i], refs[1][i]))]
    h = [hyps[i] for i in keep]
    rs = [[r[i] for i in keep] for r in refs]
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, lines in [("hyp", h), ("ref1", rs[0]), ("ref2", rs[1])]:
            p = os.path.join(d, name)
            with open(p, "w", encoding="utf-8", newline="\n") as f:
                f.write("\n".join(lines) + "\n")
            paths.append(p)
        for c in cases:
            metric = "bleu" if c["metric"] == "bleu" else ("chrf++" if c["word_order"] else "chrf")
            cmd = [binary, "score", "--hyp", paths[0], "--metrics", metric, "--json"]
            for p in paths[1:1 + c["refs"]]:
                cmd += ["--ref", p]
            if c["metric"] == "bleu":
                cmd += ["--tokenize", c["tokenize"]]
            if c["lowercase"]:
                cmd += ["--lowercase"]
            got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])[metric]
            want = score(c, h, rs)["score_float"]
            ok = got == want
            bad += not ok
            print(f"  kindling score {metric:6} {c.get('tokenize', '')!s:5} lc={c['lowercase']!s:5} refs={c['refs']}: {got!r} vs sacrebleu {want!r} {'same' if ok else 'DIFFERENT'}")
    if bad:
        sys.exit(f"{bad} settings differ")
    print(f"kindling score equals sacrebleu on all {len(cases)} settings ({len(h)} segments)")


if __name__ == "__main__":
    main()
