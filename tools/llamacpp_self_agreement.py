#!/usr/bin/env python3
"""How far llama.cpp agrees with itself: greedy continuations of three
prompts on each quantized SmolLM2 file with an f32 KV cache and with its
default f16 cache; prints how many of 32 tokens agree before the first
difference. The yardstick for how closely another implementation can be
expected to follow llama.cpp's greedy output (docs/quantization.md).

    .venv/bin/python tools/llamacpp_self_agreement.py   # files from tools/check_llamacpp_quant.py in /tmp/kindling-llamacpp
"""
import sys
from llama_cpp import Llama
import llama_cpp
prompts = ["def fib(n):", "Once upon a time", "The capital of France is"]
res = {}
for f in ["kindling-q8_0", "kindling-q4_0", "kindling-q4_1"]:
    for kv in ["f32", "f16"]:
        t = llama_cpp.GGML_TYPE_F32 if kv == "f32" else llama_cpp.GGML_TYPE_F16
        llm = Llama(model_path=f"/tmp/kindling-llamacpp/{f}.gguf", n_ctx=256, n_threads=1, verbose=False, type_k=t, type_v=t)
        outs = []
        for p in prompts:
            toks = llm.tokenize(p.encode(), add_bos=False)
            llm.reset()
            out = []
            for tok in llm.generate(toks, top_k=1, temp=0.0, repeat_penalty=1.0):
                out.append(tok)
                if len(out) >= 32: break
            outs.append(out)
        res[(f, kv)] = outs
        del llm
    a, b = res[(f, "f32")], res[(f, "f16")]
    agree = []
    for x, y in zip(a, b):
        n = next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), len(x))
        agree.append(n)
    print(f, "llama.cpp f32 KV vs f16 KV: tokens agreeing before the first difference, per prompt:", agree, flush=True)
