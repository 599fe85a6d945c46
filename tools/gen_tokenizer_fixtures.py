#!/usr/bin/env python3
"""Expected token ids for Kindling's tokenizer parity tests.

Regenerate (from the repo root, with the shared data beside the repository):
    python3 -m venv .venv && .venv/bin/pip install tokenizers tiktoken transformers gguf
    .venv/bin/python tools/gen_tokenizer_fixtures.py [--data ../shared/data]

Writes crates/kindling-data/tests/fixtures/tokenizer_parity.json: the test
texts and, for each tokenizer, the ids the reference library gives. The file
is committed, so `cargo test` never needs Python. Every reference encodes with
its special tokens recognised in the text (tiktoken: allowed_special="all";
Hugging Face: split_special_tokens off) and adds no BOS/EOS, which is what
`kindling_data::tokenizer::Tokenizer::encode` promises.

References:
  gpt2        tokenizers BPE from encoder.json + vocab.bpe, ByteLevel pre-tokenizer,
              <|endoftext|> special (checked equal to tiktoken's own gpt2 encoding
              built from the same two files)
  r50k_base   tiktoken from tiktoken/r50k_base.tiktoken with r50k's pattern
  cl100k_base tiktoken from tiktoken/cl100k_base.tiktoken
  o200k_base  tiktoken from tiktoken/o200k_base.tiktoken
  qwen3       tokenizers Tokenizer.from_file(qwen3/tokenizer.json)
  smollm2     transformers AutoTokenizer.from_pretrained(dir, gguf_file=...) on
              SmolLM2-135M-Instruct.Q4_1.gguf (the tokenizer transformers builds
              from the GGUF metadata; see tokenizer.rs for how it differs from
              SmolLM2's own tokenizer.json)
"""

import argparse
import json
import os
import sys

import tiktoken
import tiktoken.load
import tokenizers
import transformers
from tiktoken_ext import openai_public
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "crates/kindling-data/tests/fixtures/tokenizer_parity.json")

# One of each thing that trips tokenizers up: scripts, digits, emoji (with
# ZWJ sequences, skin tones and flags), code, whitespace runs, CRLF,
# contractions, special tokens written in the text. All NFC, so tokenizers
# with an NFC normalizer (Qwen3) still round-trip them exactly.
TEXTS = [
    ("empty", ""),
    ("english", "Hello world! The quick brown fox jumps over the lazy dog."),
    ("contractions", "I'm sure they'll say it's fine, but we've DON'T and I'D rather not. She's"),
    ("numbers_9_11", "9.11 vs 9.3"),
    ("numbers", "1 12 123 1234 12345 1234567890 3.14159 -42 1,000,000 2024-01-01 0x1F 1e-9"),
    ("chinese", "你好，世界！今天天气很好，我们去公园散步吧。机器学习是人工智能的一个分支。"),
    ("japanese_korean", "こんにちは世界。カタカナとひらがな。안녕하세요 세계"),
    ("accents_greek_cyrillic", "café naïve façade Zürich Ωmega αβγ Привет, мир!"),
    ("arabic_hindi", "مرحبا بالعالم नमस्ते दुनिया"),
    ("emoji", "🙂 👍🏽 👨\u200d👩\u200d👧\u200d👦 🇨🇳🇺🇸 ❤️ 🔥🔥🔥"),
    ("code_python",
     "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
     "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
     "print(fib(10))  # 55\n"),
    ("code_rust", "fn main() {\n\tlet v: Vec<u32> = (0..10).map(|x| x * x).collect();\n\tprintln!(\"{v:?}\");\n}\n"),
    ("whitespace_runs", "a  b   c    d\t\te \t \n\n\n  f      \n   g"),
    ("leading_trailing_spaces", "   leading and trailing   "),
    ("only_spaces", "        "),
    ("newlines", "\n\n\n\nend\n"),
    ("crlf", "line one\r\nline two\r\n\r\nline four\r\n"),
    ("punctuation", "Wait... what?!? (yes) [no] {maybe} <tag/> @user #hash $5.00 50% a&b ~/path/to/file.txt"),
    ("url_email", "https://example.com/a/b?c=1&d=two#frag mail@example.org"),
    ("mixed", "GPT-4o 说: \"Hello, 世界\" 🙂 — 3×4=12, naïve café.\r\n\tDone."),
    ("endoftext", "first document<|endoftext|>second document"),
    ("chatml", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi! 9.11 or 9.3?<|im_end|>\n"),
    ("repeated", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("long_words", "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism"),
    ("paragraph",
     "In 1998, LeCun et al. trained LeNet-5 on MNIST: 60,000 training images of 28×28 pixels. "
     "Twenty years later, GPT-2 (1.5B parameters) was trained on 40 GB of text — roughly 8 million "
     "web pages. Its tokenizer, a byte-level BPE with 50,257 tokens, never meets an unknown character."),
]

GPT2_SPECIALS = ["<|endoftext|>"]


def hf_gpt2(data):
    d = os.path.join(data, "tokenizers/gpt2")
    tok = Tokenizer(models.BPE.from_file(os.path.join(d, "encoder.json"), os.path.join(d, "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in GPT2_SPECIALS])
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def tiktoken_gpt2_from_data_gym(data):
    d = os.path.join(data, "tokenizers/gpt2")
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        os.path.join(d, "vocab.bpe"), os.path.join(d, "encoder.json"))
    enc = tiktoken.Encoding("gpt2-data-gym", pat_str=openai_public.r50k_pat_str,
                            mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    return lambda text: enc.encode(text, allowed_special="all")


def tiktoken_named(data, name):
    spec = getattr(openai_public, name)
    # The constructors download their rank file; run them with the loader
    # pointed at the local copy instead (same bytes: tiktoken pins the hash).
    path = os.path.join(data, "tokenizers/tiktoken", name + ".tiktoken")
    real_load = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda url, expected_hash=None: tiktoken.load.load_tiktoken_bpe(
        path, expected_hash=expected_hash)
    try:
        params = spec()
    finally:
        openai_public.load_tiktoken_bpe = real_load
    params.pop("explicit_n_vocab", None)
    enc = tiktoken.Encoding(**params)
    return lambda text: enc.encode(text, allowed_special="all")


def hf_qwen3(data):
    tok = Tokenizer.from_file(os.path.join(data, "tokenizers/qwen3/tokenizer.json"))
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def transformers_smollm2(data):
    d = os.path.join(data, "smollm2")
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    return lambda text: tok.encode(text, add_special_tokens=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    args = ap.parse_args()
    data = os.path.abspath(args.data)

    import gguf  # noqa: F401  (transformers needs it to read the GGUF)

    refs = {
        "gpt2": ("tokenizers/gpt2", "tokenizers BPE.from_file(encoder.json, vocab.bpe) + ByteLevel", hf_gpt2(data)),
        "r50k_base": ("tokenizers/tiktoken/r50k_base.tiktoken", "tiktoken r50k_base", tiktoken_named(data, "r50k_base")),
        "cl100k_base": ("tokenizers/tiktoken/cl100k_base.tiktoken", "tiktoken cl100k_base", tiktoken_named(data, "cl100k_base")),
        "o200k_base": ("tokenizers/tiktoken/o200k_base.tiktoken", "tiktoken o200k_base", tiktoken_named(data, "o200k_base")),
        "qwen3": ("tokenizers/qwen3/tokenizer.json", "tokenizers Tokenizer.from_file", hf_qwen3(data)),
        "smollm2": ("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "transformers AutoTokenizer.from_pretrained(gguf_file=...)", transformers_smollm2(data)),
    }
    texts = [t for _, t in TEXTS]
    out = {
        "generated_by": "tools/gen_tokenizer_fixtures.py",
        "versions": {"tokenizers": tokenizers.__version__, "tiktoken": tiktoken.__version__,
                     "transformers": transformers.__version__},
        "texts": [{"name": n, "text": t} for n, t in TEXTS],
        "tokenizers": {},
    }
    for name, (path, reference, encode) in refs.items():
        ids = [encode(t) for t in texts]
        out["tokenizers"][name] = {"path": path, "reference": reference, "ids": ids}
        print(f"{name}: {sum(map(len, ids))} ids over {len(texts)} texts", file=sys.stderr)

    # The two GPT-2 references, and tiktoken's own reading of the GPT-2 files, must agree.
    data_gym = tiktoken_gpt2_from_data_gym(data)
    for (n, t), a, b in zip(TEXTS, out["tokenizers"]["gpt2"]["ids"], out["tokenizers"]["r50k_base"]["ids"]):
        assert a == b == data_gym(t), f"gpt2 references disagree on {n}: {a} {b}"

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
