"""Loads an adapter Kindling wrote (the Rust test `lora_peft` with
KINDLING_PEFT_OUT=DIR) into Hugging Face PEFT on the same base model and
compares PEFT's logits with Kindling's, saved beside the adapter.
Run:
  KINDLING_PEFT_OUT=/tmp/kindling-peft cargo test -p kindling-models --test lora_peft
  .venv/bin/python tools/check_peft_load.py /tmp/kindling-peft"""
import os, sys
import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM
from peft import PeftModel

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "..", "crates/kindling-models/tests/fixtures/tiny-llama/untied")
adapter = sys.argv[1]
base = LlamaForCausalLM.from_pretrained(BASE).eval()
model = PeftModel.from_pretrained(base, adapter).eval()
ref = load_file(os.path.join(adapter, "kindling_logits.safetensors"))
with torch.no_grad():
    logits = model(ref["ids"].reshape(1, -1)).logits[0]
diff = (logits - ref["logits"].reshape(logits.shape)).abs().max().item()
print(f"PEFT loaded {adapter}: max |logit difference| vs Kindling = {diff:.3g}")
sys.exit(0 if diff < 1e-5 else 1)
