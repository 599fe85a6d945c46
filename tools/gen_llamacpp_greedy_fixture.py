#!/usr/bin/env python3
"""llama.cpp's own greedy continuations of four prompts on a quantized
SmolLM2 file, for `tests/quantize.rs` (Kindling must pick the same tokens).

    for t in q8_0 q4_0 q4_1; do .venv/bin/python tools/gen_llamacpp_greedy_fixture.py \
        $t.gguf crates/kindling-cli/tests/fixtures/llamacpp_greedy_$t.json; done

Each file is `kindling quantize --type T` of the shared
SmolLM2-135M-Instruct.Q4_1.gguf (its bytes equal llama-quantize's). One
thread, f32 KV cache, no flash attention, the prompt in one batch, 64
tokens or up to the end-of-text token, each the argmax of llama.cpp's
logits after its own previous choices.
"""
import hashlib
import json
import sys

import llama_cpp
import numpy as np

PROMPTS = ["Once upon a time", "def fib(n):", "The capital of France is", "Water boils at"]
N = 64


def main():
    path, out = sys.argv[1], sys.argv[2]
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=1, n_threads_batch=1, verbose=False,
                          type_k=0, type_v=0, flash_attn=False, logits_all=True)
    eos = llm.token_eos()
    cases = []
    for p in PROMPTS:
        llm.reset()
        llm.eval(llm.tokenize(p.encode(), add_bos=False))
        ids = []
        for _ in range(N):
            nxt = int(np.argmax(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)))
            ids.append(nxt)
            if nxt == eos:
                break
            llm.eval([nxt])
        cases.append({"prompt": p, "ids": ids})
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    json.dump({"model_sha256": digest, "llama_cpp_python": llama_cpp.__version__, "max_new_tokens": N,
               "cases": cases}, open(out, "w"), indent=1)
    print(f"{len(cases)} continuations, {sum(len(c['ids']) for c in cases)} tokens -> {out}")


if __name__ == "__main__":
    main()
