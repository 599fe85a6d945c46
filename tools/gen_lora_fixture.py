"""A LoRA adapter for the tiny random LLaMA (tests/fixtures/tiny-llama/untied),
made and saved by Hugging Face PEFT, with the adapted model's logits and the
gradients of a next-token loss with respect to every adapter tensor. The Rust
tests load the adapter, check logits and gradients, and write the adapter back
in PEFT's format. Run: .venv/bin/python tools/gen_lora_fixture.py"""
import json, os
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaForCausalLM
from peft import LoraConfig, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "..", "crates/kindling-models/tests/fixtures/tiny-llama/untied")
OUT = os.path.join(HERE, "..", "crates/kindling-models/tests/fixtures/tiny-llama/lora")

torch.manual_seed(1)
model = LlamaForCausalLM.from_pretrained(BASE).eval()
cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
peft_model = get_peft_model(model, cfg)
# PEFT starts B at zero (the adapter is a no-op); give every adapter tensor
# random values so a wrong scale, transpose or name would show in the logits.
with torch.no_grad():
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            p.normal_(0.0, 0.2)
peft_model.save_pretrained(OUT)
# The path PEFT records is this machine's; keep the file reproducible.
cfg_path = os.path.join(OUT, "adapter_config.json")
with open(cfg_path) as f:
    c = json.load(f)
c["base_model_name_or_path"] = "tiny-llama/untied"
with open(cfg_path, "w") as f:
    json.dump(c, f, indent=2, sort_keys=True)
    f.write("\n")
for extra in ["README.md"]:
    p = os.path.join(OUT, extra)
    if os.path.exists(p):
        os.remove(p)

ids = torch.tensor([[1, 5, 9, 60, 3, 3, 7, 11, 0, 42, 17, 29]])
logits = peft_model(ids).logits[0]
loss = F.cross_entropy(logits[:-1], ids[0, 1:])
loss.backward()
ref = {"ids": ids[0].to(torch.int64), "logits": logits.detach().contiguous(), "loss": loss.detach().reshape(1)}
for name, p in peft_model.named_parameters():
    if "lora_" in name:
        # base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight
        # -> grad.model.layers.0.self_attn.q_proj.lora_A.weight (PEFT's saved name minus its prefix)
        short = name.replace("base_model.model.", "", 1).replace(".default", "")
        ref["grad." + short] = p.grad.contiguous()
# The merged model (W + alpha/r * B A) must give the same logits.
merged = peft_model.merge_and_unload()
with torch.no_grad():
    ref["merged_logits"] = merged(ids).logits[0].contiguous()
save_file(ref, os.path.join(OUT, "reference.safetensors"))
print("loss", loss.item(), "max |logit|", float(logits.abs().max()),
      "merged diff", float((ref["merged_logits"] - ref["logits"]).abs().max()))
