"""Loads a Kindling-saved Hugging Face folder (LLaMA or GPT-2) in
`transformers` and compares its logits with the ones Kindling computed
(kindling_logits.safetensors in the folder: `ids` [T] and `logits` [T, V]).
Fails if any tensor was missing or left over, or the logits differ. Usage:
  KINDLING_HF_EXPORT=/tmp/kl cargo test -p kindling-models --test llama_hf kindling_llama_exports
  .venv/bin/python tools/check_hf_roundtrip.py /tmp/kl
  KINDLING_HF_EXPORT=/tmp/kg cargo test -p kindling-models --test gpt2_hf kindling_gpt2_exports
  .venv/bin/python tools/check_hf_roundtrip.py /tmp/kg
or on a `kindling train lm` run directory after writing kindling_logits.safetensors."""
import sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

d = sys.argv[1]
model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
model.eval()
# A tensor transformers had to initialize itself would make the logits
# differ anyway; naming it says why.
bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
if bad:
    print(f"{type(model).__name__} from {d}: {bad}")
    sys.exit(1)
ref = load_file(f"{d}/kindling_logits.safetensors")
with torch.no_grad():
    logits = model(ref["ids"].unsqueeze(0)).logits[0]
diff = (logits - ref["logits"]).abs().max().item()
scale = ref["logits"].abs().max().item()
print(f"{type(model).__name__} from {d}: max |logit difference| {diff:.3e} (largest logit {scale:.3f})")
sys.exit(0 if diff <= 1e-4 * max(1.0, scale) else 1)
