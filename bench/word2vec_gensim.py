"""gensim's Word2Vec on a tokenized corpus (one sentence a line, tokens split
on spaces: the file `kindling lab word2vec --dump-corpus` writes), with the
settings Kindling uses, scored by gensim's own evaluate_word_analogies and
evaluate_word_pairs. Prints one JSON line with the keys of
`kindling lab word2vec --json`.

The corpus is read into memory first (lines cut at 10,000 tokens, as
LineSentence cuts them), so gensim's training time holds no file reading.
The learning rate decays by words (total_words), as Kindling's does.

Usage: word2vec_gensim.py CORPUS --questions F --wordsim F --simlex F
       [--workers 2] [--save vectors.txt] [--dim 100 ...]
"""

import argparse
import json
import logging
import sys
import time

from gensim.models import Word2Vec

ap = argparse.ArgumentParser()
ap.add_argument("corpus")
ap.add_argument("--questions", required=True)
ap.add_argument("--wordsim", required=True)
ap.add_argument("--simlex", required=True)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--dim", type=int, default=100)
ap.add_argument("--window", type=int, default=5)
ap.add_argument("--negative", type=int, default=5)
ap.add_argument("--min-count", type=int, default=5)
ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--sample", type=float, default=1e-3)
ap.add_argument("--alpha", type=float, default=0.025)
ap.add_argument("--min-alpha", type=float, default=0.0001)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--save", help="write the vectors here, word2vec text format")
args = ap.parse_args()
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

sentences = []
with open(args.corpus, encoding="utf-8") as f:
    for line in f:
        toks = line.split()
        for i in range(0, len(toks), 10000):
            sentences.append(toks[i : i + 10000])
words = sum(len(s) for s in sentences)

model = Word2Vec(
    vector_size=args.dim,
    window=args.window,
    negative=args.negative,
    hs=0,
    sg=1,
    min_count=args.min_count,
    sample=args.sample,
    alpha=args.alpha,
    min_alpha=args.min_alpha,
    seed=args.seed,
    workers=args.workers,
    epochs=args.epochs,
)
t0 = time.perf_counter()
model.build_vocab(sentences)
t1 = time.perf_counter()
model.train(sentences, total_words=model.corpus_total_words, epochs=model.epochs)
t2 = time.perf_counter()
if args.save:
    model.wv.save_word2vec_format(args.save, binary=False)

acc, sections = model.wv.evaluate_word_analogies(args.questions)
questions = 0
with open(args.questions, encoding="utf-8") as f:
    questions = sum(1 for l in f if not l.startswith(": ") and len(l.split()) == 4)
answered = sum(len(s["correct"]) + len(s["incorrect"]) for s in sections[:-1])
ws = model.wv.evaluate_word_pairs(args.wordsim)
sl = model.wv.evaluate_word_pairs(args.simlex)
print(
    json.dumps(
        {
            "words": words,
            "vocab": len(model.wv),
            "words_per_sec": words * args.epochs / (t2 - t1),
            "train_seconds": t2 - t1,
            "vocab_seconds": t1 - t0,
            "analogy_accuracy": acc,
            "analogy_answered": answered,
            "analogy_skipped": questions - answered,
            "analogy_sections": [
                {
                    "section": s["section"],
                    "accuracy": len(s["correct"]) / max(1, len(s["correct"]) + len(s["incorrect"])),
                    "answered": len(s["correct"]) + len(s["incorrect"]),
                }
                for s in sections[:-1]
            ],
            "wordsim_spearman": float(ws[1][0]),
            "simlex_spearman": float(sl[1][0]),
            "workers": args.workers,
        }
    )
)
