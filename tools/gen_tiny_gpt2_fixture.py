"""A tiny random GPT-2 saved by `transformers` (Hugging Face folder), with its
logits for fixed ids, for the Rust test that loads it, checks the logits and
saves it back (crates/kindling-models/tests/gpt2_hf.rs).
Run: .venv/bin/python tools/gen_tiny_gpt2_fixture.py"""
import os
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

OUT = os.path.join(os.path.dirname(__file__), "..", "crates/kindling-models/tests/fixtures/tiny-gpt2")

torch.manual_seed(0)
cfg = GPT2Config(vocab_size=61, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                 activation_function="gelu_new", layer_norm_epsilon=1e-5,
                 bos_token_id=60, eos_token_id=60)
model = GPT2LMHeadModel(cfg).eval()
with torch.no_grad():
    for n, p in model.named_parameters():
        # LayerNorm gains away from 1 and biases away from 0, so a skipped
        # or misplaced one would show; Conv1D biases too.
        if ".ln_" in n or "ln_f" in n:
            p.uniform_(0.5, 1.5) if n.endswith("weight") else p.uniform_(-0.3, 0.3)
        elif n.endswith("bias"):
            p.uniform_(-0.1, 0.1)
        else:
            # Weights 10x GPT-2's init, so pre-activations reach the range
            # where exact and tanh GELU differ (at std 0.02 they agree to ~1e-6
            # in the logits, inside any tolerance).
            p.normal_(0.0, 0.2)
model.save_pretrained(OUT, safe_serialization=True)
ids = torch.tensor([[1, 5, 9, 60, 3, 3, 7, 11, 0, 42, 17, 29]])
with torch.no_grad():
    logits = model(ids).logits[0]
save_file({"ids": ids[0].to(torch.int64), "logits": logits.contiguous()}, os.path.join(OUT, "reference.safetensors"))
# generation_config.json is not needed by Kindling's loader.
gc = os.path.join(OUT, "generation_config.json")
if os.path.exists(gc):
    os.remove(gc)
print("tiny-gpt2", tuple(logits.shape), float(logits.abs().max()))
