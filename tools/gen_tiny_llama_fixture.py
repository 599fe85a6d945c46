"""A tiny random LLaMA saved by `transformers` (Hugging Face folder), with its
logits for fixed ids, for the Rust test that loads it, checks the logits and
saves it back. Run: .venv/bin/python tools/gen_tiny_llama_fixture.py"""
import json, os
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "crates/kindling-models/tests/fixtures/tiny-llama")

torch.manual_seed(0)
for name, tied in [("untied", False), ("tied", True)]:
    cfg = LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=tied)
    model = LlamaForCausalLM(cfg).eval()
    # Norm gains away from 1 so a skipped norm weight would show.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
    d = os.path.join(OUT, name)
    model.save_pretrained(d, safe_serialization=True)
    ids = torch.tensor([[1, 5, 9, 60, 3, 3, 7, 11, 0, 42, 17, 29]])
    with torch.no_grad():
        logits = model(ids).logits[0]
    save_file({"ids": ids[0].to(torch.int64), "logits": logits.contiguous()}, os.path.join(d, "reference.safetensors"))
    # generation_config.json is not needed by Kindling's loader.
    gc = os.path.join(d, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    print(name, logits.shape, float(logits.abs().max()))
