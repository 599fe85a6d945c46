"""Loads a Kindling-saved Hugging Face LLaMA folder in `transformers` and
compares its logits with the ones Kindling computed (kindling_logits.safetensors
in the folder). Usage:
  KINDLING_HF_EXPORT=/tmp/kl cargo test -p kindling-models --test llama_hf kindling_llama_exports
  .venv/bin/python tools/check_hf_roundtrip.py /tmp/kl
or on a `kindling train lm` run directory after writing kindling_logits.safetensors."""
import sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

d = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
ref = load_file(f"{d}/kindling_logits.safetensors")
with torch.no_grad():
    logits = model(ref["ids"].unsqueeze(0)).logits[0]
diff = (logits - ref["logits"]).abs().max().item()
scale = ref["logits"].abs().max().item()
print(f"{type(model).__name__} from {d}: max |logit difference| {diff:.3e} (largest logit {scale:.3f})")
sys.exit(0 if diff <= 1e-4 * max(1.0, scale) else 1)
