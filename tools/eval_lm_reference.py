#!/usr/bin/env python3
"""Reference numbers for `kindling eval-lm` on SmolLM2-135M-Instruct, from
Hugging Face transformers (the GGUF's weights dequantized to f32, CPU).

Computes, with the definitions of docs/eval-lm.md written out again here in
PyTorch (no Kindling code is used):

  perplexity   Hugging Face's sliding windows over a Shakespeare excerpt
               (max_length 256, stride 128): tokens, windows, scored tokens,
               the sum of -log p over the scored tokens, nats/token and
               perplexity; also what the guide's own loop gives (it weights
               each window's mean by trg_len - 1).
  choice       0-shot log-likelihoods of every choice of the 40-item sample
               set (data/eval/mmlu-style-sample.jsonl), split into tokens as
               lm-evaluation-harness's TemplateLM._encode_pair does, and
               acc / acc_norm (per character, as lm-eval's len(choice));
               three of the items are also written as a task file for the
               Rust test.
  --full       the perplexity of tiny-shakespeare's validation split (the
               last 10% of its tokens) with max_length 1024, stride 512, for
               docs/eval-lm.md (a few minutes; not in the fixture the test
               reads unless given).

Writes crates/kindling-cli/tests/fixtures/eval-lm/{smollm2-reference.json,
shakespeare-excerpt.txt, smollm2-3-items.jsonl}.

Run:  /work/main/.venv/bin/python tools/eval_lm_reference.py [--full]
"""

import argparse
import json
import math
import os
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = "/work/shared/data/smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT_DIR = os.path.join(ROOT, "crates", "kindling-cli", "tests", "fixtures", "eval-lm")
SHAKESPEARE = os.path.join(ROOT, "data", "shakespeare", "input.txt")
TASK = os.path.join(ROOT, "data", "eval", "mmlu-style-sample.jsonl")
EXCERPT_CHARS = 3000
MAX_LENGTH, STRIDE = 256, 128
# Task lines (1-based) written out for the Rust test: English arithmetic,
# English history, Chinese geography.
TEST_LINES = [1, 14, 30]


def windows(n, max_length, stride):
    """(begin, end, score_from) as the guide's loop makes them."""
    out, prev_end = [], 0
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        out.append((begin, end, max(prev_end, begin + 1)))
        prev_end = end
        if end == n:
            break
    return out


@torch.no_grad()
def token_log_probs(model, ids):
    """log p(ids[t] | ids[:t]) for t = 1..len(ids)-1, one forward."""
    x = torch.tensor([ids])
    logits = model(x).logits[0].double()
    lp = torch.log_softmax(logits, dim=-1)
    return lp[:-1].gather(1, x[0, 1:, None]).squeeze(1)


@torch.no_grad()
def perplexity(model, ids, max_length, stride):
    nll, scored, guide_nll, guide_tokens = 0.0, 0, 0.0, 0
    ws = windows(len(ids), max_length, stride)
    prev_end = 0
    for begin, end, score_from in ws:
        lp = token_log_probs(model, ids[begin:end])
        # Row t - begin - 1 scores token t.
        part = lp[score_from - begin - 1 :]
        nll -= part.sum().item()
        scored += len(part)
        # The guide's loop: the mean loss of the window times
        # num_loss_tokens = trg_len - 1, trg_len = end - prev_end.
        num_loss = end - prev_end - 1
        guide_nll += (-part.mean().item()) * num_loss
        guide_tokens += num_loss
        prev_end = end
    return {
        "tokens": len(ids),
        "windows": len(ws),
        "scored": scored,
        "nll_sum": nll,
        "nats_per_token": nll / scored,
        "perplexity": math.exp(nll / scored),
        "guide_nats_per_token": guide_nll / guide_tokens,
        "max_length": max_length,
        "stride": stride,
    }


def encode_pair(tok, context, continuation):
    """lm-eval's TemplateLM._encode_pair for causal models."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation, add_special_tokens=False)
    ctx = tok.encode(context, add_special_tokens=False)
    return ctx, whole[len(ctx) :]


@torch.no_grad()
def choice_scores(model, tok, item):
    context = f"Question: {item['question']}\nAnswer:"
    out = []
    for choice in item["choices"]:
        ctx, cont = encode_pair(tok, context, " " + choice)
        seq = ctx + cont
        lp = token_log_probs(model, seq)
        out.append(
            {
                "text": choice,
                "loglik": lp[-len(cont) :].sum().item(),
                "tokens": len(cont),
                "chars": len(choice),
            }
        )
    lls = [c["loglik"] for c in out]
    norm = [c["loglik"] / c["chars"] for c in out]
    pred = max(range(len(lls)), key=lambda i: (lls[i], -i))
    pred_norm = max(range(len(norm)), key=lambda i: (norm[i], -i))
    return {
        "context_tokens": len(tok.encode(context, add_special_tokens=False)),
        "choices": out,
        "pred": pred,
        "pred_norm": pred_norm,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="also the whole validation split")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=GGUF_FILE, dtype=torch.float32)
    model.eval()
    os.makedirs(OUT_DIR, exist_ok=True)

    with open(SHAKESPEARE, encoding="utf-8") as f:
        corpus = f.read()
    start = corpus.index("\n\n", len(corpus) * 9 // 10) + 2
    excerpt = corpus[start : corpus.rindex("\n", start, start + EXCERPT_CHARS) + 1]
    with open(os.path.join(OUT_DIR, "shakespeare-excerpt.txt"), "w", encoding="utf-8") as f:
        f.write(excerpt)
    ids = tok.encode(excerpt, add_special_tokens=False)
    ref = {
        "generator": "tools/eval_lm_reference.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": f"{MODEL_DIR}/{GGUF_FILE}",
        "perplexity": {"text": "shakespeare-excerpt.txt", **perplexity(model, ids, MAX_LENGTH, STRIDE)},
    }
    print("excerpt:", json.dumps(ref["perplexity"]))

    items = [json.loads(line) for line in open(TASK, encoding="utf-8")]
    t0 = time.time()
    scored = []
    for i, item in enumerate(items):
        s = choice_scores(model, tok, item)
        s.update({"index": i, "line": i + 1, "answer": item["answer"], "lang": item["lang"]})
        scored.append(s)
    n = len(scored)
    acc = sum(s["pred"] == s["answer"] for s in scored) / n
    acc_norm = sum(s["pred_norm"] == s["answer"] for s in scored) / n
    ref["choice"] = {
        "task": "data/eval/mmlu-style-sample.jsonl",
        "shots": 0,
        "n": n,
        "acc": acc,
        "acc_norm": acc_norm,
        "seconds": time.time() - t0,
        "test_lines": TEST_LINES,
        "items": scored,
    }
    print(f"choice 0-shot: acc {acc:.4f} acc_norm {acc_norm:.4f} over {n} items")
    with open(os.path.join(OUT_DIR, "smollm2-3-items.jsonl"), "w", encoding="utf-8") as f:
        for line in TEST_LINES:
            f.write(json.dumps(items[line - 1], ensure_ascii=False) + "\n")

    if args.full:
        ids = tok.encode(corpus, add_special_tokens=False)
        val = ids[len(ids) * 9 // 10 :]
        t0 = time.time()
        full = perplexity(model, val, 1024, 512)
        full["seconds"] = time.time() - t0
        ref["validation_split"] = {"corpus": "shakespeare", **full}
        print("validation split:", json.dumps(full))
    else:
        old = os.path.join(OUT_DIR, "smollm2-reference.json")
        if os.path.exists(old):
            prev = json.load(open(old, encoding="utf-8"))
            if "validation_split" in prev:
                ref["validation_split"] = prev["validation_split"]
    with open(os.path.join(OUT_DIR, "smollm2-reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
