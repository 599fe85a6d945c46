"""A model trained by `kindling train lm` in `transformers`: loads RUN/hf (the
Hugging Face folder the run leaves), tokenizes TEXT with its tokenizer.json
(Python `tokenizers`), and compares the next-token top-K ids and logits with
what `kindling next-token --model RUN --json` prints. Usage:
  .venv/bin/python tools/check_trained_lm.py target/release/kindling runs/lm "ROMEO: "
"""
import json, subprocess, sys
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

kindling, run, text = sys.argv[1], sys.argv[2], sys.argv[3]
k = 10
out = subprocess.run([kindling, "next-token", "--model", run, "--text", text, "--top", str(k), "--json"],
                     capture_output=True, text=True, check=True)
ours = json.loads(out.stdout.strip().splitlines()[-1])
tok = Tokenizer.from_file(f"{run}/hf/tokenizer.json")
ids = tok.encode(text, add_special_tokens=False).ids
assert ids == ours["ids"], f"token ids differ: {ids} vs {ours['ids']}"
model, info = AutoModelForCausalLM.from_pretrained(f"{run}/hf", dtype=torch.float32, output_loading_info=True)
bad = {n: v for n, v in info.items() if n in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
assert not bad, bad
with torch.no_grad():
    logits = model.eval()(torch.tensor([ids])).logits[0, -1]
top = torch.topk(logits, k)
diff = max(abs(logits[t["id"]].item() - t["logit"]) for t in ours["top"])
same = top.indices.tolist() == [t["id"] for t in ours["top"]]
print(f"{type(model).__name__} from {run}/hf, {len(ids)} prompt tokens: top-{k} ids {'identical' if same else 'DIFFER'}, "
      f"max |logit difference| {diff:.3e} (largest logit {top.values[0].item():.3f})")
sys.exit(0 if same and diff < 1e-4 * max(1.0, abs(top.values[0].item())) else 1)
