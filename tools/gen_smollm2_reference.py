#!/usr/bin/env python3
"""Reference fixtures for Kindling's SmolLM2-135M-Instruct (GGUF, Q4_1) support.

Loads /work/shared/data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf with Hugging Face
transformers (weights dequantized to f32, CPU, 2 threads) and writes, under
crates/kindling-models/tests/fixtures/smollm2/:

  reference.json          prompts, prompt ids, top-20 next-token logits, 24-token
                          greedy continuations, and the model config transformers used
  logits.safetensors      last.<name>: f32 [49152] last-position logits of every prompt,
                          all.france: f32 [T, 49152] logits at every position of "france"
  hidden_france.safetensors
                          per-layer hidden states of the "france" prompt, f32 [T, 576],
                          and a few dequantized weight rows (see HIDDEN_DOC below)

Run:  .venv/bin/python tools/gen_smollm2_reference.py
Deterministic: no sampling, fixed thread count, output files rewritten byte for byte.
"""

import hashlib
import inspect
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = "/work/shared/data/smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
OUT_DIR = os.path.join(ROOT, "crates", "kindling-models", "tests", "fixtures", "smollm2")
SHAKESPEARE = os.path.join(ROOT, "data", "shakespeare", "input.txt")

TOP_K = 20
NEW_TOKENS = 24
LONG_CHARS = 2600
LONG_MIN_TOKENS = 520
MAX_LOGITS_BYTES = 3 * 1024 * 1024

HIDDEN_DOC = (
    "hidden states of the 'france' prompt, f32 [T, 576]: "
    "hidden.0 = token embeddings (transformers hidden_states[0]); "
    "hidden.1 = output of block 0 (hidden_states[1]); "
    "block29.out = output of block 29 (the last block), before the final RMSNorm; "
    "hidden.30 = transformers hidden_states[30], which in transformers 5 is the final "
    "RMSNorm output (identical to final_norm), not the raw output of block 29; "
    "final_norm = output of model.norm (input to lm_head). "
    "Weights, f32 as transformers dequantized them: emb.504 = embed_tokens row 504 [576]; "
    "q_proj0.rows4 / k_proj0.rows4 = model.layers.0.self_attn.{q,k}_proj.weight[:4] [4, 576] "
    "(rows already un-permuted from llama.cpp's RoPE order to HF order)."
)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def long_text():
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text = f.read()
    # First ~2,600 characters, cut back to the end of a line.
    return text[: text.rfind("\n", 0, LONG_CHARS) + 1]


def build_prompts(tok):
    chat_2plus2 = [{"role": "user", "content": "What is 2+2?"}]
    chat_system = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name three primary colors."},
    ]
    prompts = [
        {"name": "france", "text": "The capital of France is", "chat": False},
        {"name": "chat_2plus2", "messages": chat_2plus2, "chat": True},
        {"name": "chat_system", "messages": chat_system, "chat": True},
        {"name": "chinese", "text": "中国的首都是", "chat": False},
        {"name": "code", "text": "def fibonacci(n):\n    ", "chat": False},
        {"name": "long", "text": long_text(), "chat": False},
    ]
    for p in prompts:
        if p["chat"]:
            p["text"] = tok.apply_chat_template(
                p["messages"], tokenize=False, add_generation_prompt=True
            )
    return prompts


def token_str(tok, i):
    return tok.decode([i], skip_special_tokens=False)


def cached_forward(model, inp, cache):
    """model(...) with a KV cache; transformers >= 5.2x names the argument `cache`
    (the old `past_key_values` is deprecated), older versions `past_key_values`."""
    if "cache" in inspect.signature(model.forward).parameters:
        o = model(input_ids=inp, cache=cache, use_cache=True)
        return o, o.cache
    o = model(input_ids=inp, past_key_values=cache, use_cache=True)
    return o, o.past_key_values


def greedy_manual(model, ids, n, eos):
    """Greedy decoding with an explicit KV-cache loop, to cross-check generate()."""
    out = []
    inp = torch.tensor([ids])
    past = None
    for _ in range(n):
        o, past = cached_forward(model, inp, past)
        nxt = int(o.logits[0, -1].argmax())
        out.append(nxt)
        if nxt in eos:
            break
        inp = torch.tensor([[nxt]])
    return out


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)

    gguf_path = os.path.join(MODEL_DIR, GGUF_FILE)
    digest = sha256(gguf_path)
    assert digest == GGUF_SHA256, f"GGUF sha256 mismatch: {digest}"

    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        MODEL_DIR, gguf_file=GGUF_FILE, dtype=torch.float32
    )
    model.eval()
    cfg = model.config
    gen_cfg = model.generation_config
    eos_ids = gen_cfg.eos_token_id
    eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])

    rope_theta = getattr(cfg, "rope_theta", None)
    if rope_theta is None:
        rope_theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta")
    config = {
        "model_type": cfg.model_type,
        "rope_theta": float(rope_theta),
        "rope_scaling": getattr(cfg, "rope_scaling", None),
        "rms_norm_eps": float(cfg.rms_norm_eps),
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads),
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "hidden_act": cfg.hidden_act,
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "unk_token_id": getattr(cfg, "unk_token_id", None),
        "generation_eos_token_id": gen_cfg.eos_token_id,
        "tokenizer": {
            "bos_token": tok.bos_token,
            "bos_token_id": tok.bos_token_id,
            "eos_token": tok.eos_token,
            "eos_token_id": tok.eos_token_id,
            "pad_token": tok.pad_token,
            "unk_token": tok.unk_token,
            "len": len(tok),
            "adds_bos_by_default": tok("x").input_ids[0] == tok.bos_token_id,
        },
    }
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr() or torch.equal(
        model.lm_head.weight, model.model.embed_tokens.weight
    )

    prompts = build_prompts(tok)
    tensors = {}
    hidden = {}
    records = []

    with torch.no_grad():
        for p in prompts:
            name = p["name"]
            ids = tok(p["text"]).input_ids  # add_special_tokens=True, transformers' default
            if p["chat"]:
                via_template = tok.apply_chat_template(
                    p["messages"], tokenize=True, add_generation_prompt=True
                )
                if isinstance(via_template, dict) or hasattr(via_template, "keys"):
                    via_template = via_template["input_ids"]
                assert list(via_template) == ids, f"{name}: apply_chat_template ids differ"
            if name == "long":
                assert len(ids) >= LONG_MIN_TOKENS, f"long prompt has {len(ids)} tokens"
            x = torch.tensor([ids])

            captured = {}
            hooks = []
            if name == "france":
                def grab(key):
                    def hook(_m, _inp, out):
                        captured[key] = (out[0] if isinstance(out, tuple) else out).detach().clone()
                    return hook
                hooks = [
                    model.model.embed_tokens.register_forward_hook(grab("embed")),
                    model.model.layers[0].register_forward_hook(grab("block0")),
                    model.model.layers[-1].register_forward_hook(grab("block29")),
                    model.model.norm.register_forward_hook(grab("final_norm")),
                ]
            out = model(input_ids=x, output_hidden_states=(name == "france"), use_cache=False)
            for h in hooks:
                h.remove()
            logits = out.logits[0].float()  # [T, V]
            last = logits[-1].contiguous()
            tensors[f"last.{name}"] = last.clone()
            if name == "france":
                tensors["all.france"] = logits.contiguous().clone()
                hs = out.hidden_states
                assert len(hs) == cfg.num_hidden_layers + 1
                hidden["hidden.0"] = hs[0][0]
                hidden["hidden.1"] = hs[1][0]
                hidden["hidden.30"] = hs[30][0]
                hidden["block29.out"] = captured["block29"][0]
                hidden["final_norm"] = captured["final_norm"][0]
                assert torch.equal(captured["embed"][0], hs[0][0])
                assert torch.equal(captured["block0"][0], hs[1][0])
                hidden_30_is_norm = bool(torch.equal(hs[30][0], captured["final_norm"][0]))
                hidden["emb.504"] = model.model.embed_tokens.weight[504]
                hidden["q_proj0.rows4"] = model.model.layers[0].self_attn.q_proj.weight[:4]
                hidden["k_proj0.rows4"] = model.model.layers[0].self_attn.k_proj.weight[:4]

            vals, idx = torch.topk(last, TOP_K)
            top = [
                {
                    "id": int(i),
                    "token": token_str(tok, int(i)),
                    "piece": tok.convert_ids_to_tokens(int(i)),
                    "logit": float(v),
                }
                for v, i in zip(vals, idx)
            ]

            gen = model.generate(
                x,
                attention_mask=torch.ones_like(x),
                do_sample=False,
                max_new_tokens=NEW_TOKENS,
                repetition_penalty=None,
                pad_token_id=gen_cfg.pad_token_id,
            )
            greedy = [int(t) for t in gen[0, len(ids):]]
            manual = greedy_manual(model, ids, NEW_TOKENS, eos_ids)
            assert manual == greedy, f"{name}: manual KV-cache greedy differs from generate()"
            stopped_at_eos = bool(greedy) and greedy[-1] in eos_ids
            assert stopped_at_eos or len(greedy) == NEW_TOKENS

            rec = {"name": name, "text": p["text"], "chat": p["chat"]}
            if p["chat"]:
                rec["messages"] = p["messages"]
            rec.update(
                {
                    "num_tokens": len(ids),
                    "ids": ids,
                    "top": top,
                    "greedy": greedy,
                    "greedy_text": tok.decode(greedy, skip_special_tokens=False),
                    "greedy_stopped_at_eos": stopped_at_eos,
                    "greedy_max_new_tokens": NEW_TOKENS,
                }
            )
            records.append(rec)

    # Checks against the behaviour SOURCE.md documents.
    fr = records[0]
    assert fr["top"][0]["token"] == " Paris", fr["top"][0]
    assert abs(fr["top"][0]["logit"] - 17.37) < 0.01, fr["top"][0]["logit"]
    c22 = next(r for r in records if r["name"] == "chat_2plus2")
    assert "4" in c22["greedy_text"], c22["greedy_text"]

    os.makedirs(OUT_DIR, exist_ok=True)
    # A single metadata key: safetensors keeps metadata in a hash map, so with several keys
    # the header order (and the file bytes) would change from run to run.
    meta_prefix = f"generated by tools/gen_smollm2_reference.py from {GGUF_FILE} (sha256 {GGUF_SHA256}). "
    size = sum(t.numel() * 4 for t in tensors.values())
    dropped_all = False
    if size > MAX_LOGITS_BYTES:
        del tensors["all.france"]
        dropped_all = True
    save_file(
        {k: v.float().contiguous() for k, v in sorted(tensors.items())},
        os.path.join(OUT_DIR, "logits.safetensors"),
        metadata={"doc": meta_prefix + "last.<name>: f32 [vocab] logits at the last prompt position; "
                  "all.france: f32 [T, vocab] logits at every position"},
    )
    save_file(
        {k: v.detach().float().contiguous().clone() for k, v in sorted(hidden.items())},
        os.path.join(OUT_DIR, "hidden_france.safetensors"),
        metadata={"doc": meta_prefix + HIDDEN_DOC},
    )

    ref = {
        "generated_by": "tools/gen_smollm2_reference.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "gguf_sha256": GGUF_SHA256,
        "gguf_file": GGUF_FILE,
        "dtype": "float32",
        "threads": 2,
        "notes": [
            "ids come from the transformers tokenizer with add_special_tokens at its default; "
            "this tokenizer adds no BOS.",
            "Chat prompts: text is tokenizer.apply_chat_template(messages, tokenize=False, "
            "add_generation_prompt=True); the template inserts a default system message when none is given.",
            "greedy: generate(do_sample=False, max_new_tokens=24), stopping after an EOS id "
            "(kept in the list); cross-checked against a manual KV-cache argmax loop.",
            "top: 20 highest last-position logits; token = tokenizer.decode([id]), piece = raw vocab entry.",
            "hidden_france.safetensors: " + HIDDEN_DOC,
        ],
        "hidden_30_is_final_norm": hidden_30_is_norm,
        "all_france_dropped": dropped_all,
        "config": config,
        "prompts": records,
    }
    with open(os.path.join(OUT_DIR, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for r in records:
        t0 = r["top"][0]
        print(f"{r['name']:12s} tokens={r['num_tokens']:4d} top1={t0['id']} {t0['token']!r} "
              f"logit={t0['logit']:.4f} eos_stop={r['greedy_stopped_at_eos']}")
        print(f"{'':12s} greedy_text={r['greedy_text']!r}")
    print(f"long prompt: {len(records[-1]['text'])} chars, {records[-1]['num_tokens']} tokens")
    print(f"hidden_states[30] == final norm output: {hidden_30_is_norm}")
    for fn in ("reference.json", "logits.safetensors", "hidden_france.safetensors"):
        print(f"wrote {os.path.relpath(os.path.join(OUT_DIR, fn), ROOT)} "
              f"({os.path.getsize(os.path.join(OUT_DIR, fn))} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
