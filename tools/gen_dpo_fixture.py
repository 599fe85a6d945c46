"""DPO against TRL: the tiny random LLaMA with the PEFT LoRA adapter of
tools/gen_lora_fixture.py is the reference (TRL keeps a copy of a starting
adapter as "ref"), the same adapter moved a little is the policy (saved as
dpo/policy), and TRL's DPOTrainer computes the sigmoid loss of two preference pairs and its
gradient with respect to every adapter tensor. Token ids stand for
themselves (a one-character-per-id tokenizer), so the Rust test can feed the
same ids. Run: .venv/bin/python tools/gen_dpo_fixture.py"""
import os, tempfile
import torch
from safetensors.torch import save_file
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, Regex
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Split
from datasets import Dataset
from peft import PeftModel
from trl import DPOConfig, DPOTrainer

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "crates/kindling-models/tests/fixtures/tiny-llama")
BETA = 0.1

ch = lambda i: chr(0x4E00 + i)
tok = PreTrainedTokenizerFast(
    tokenizer_object=Tokenizer(WordLevel({ch(i): i for i in range(61)}, unk_token=ch(0))),
    pad_token=ch(0), eos_token=ch(2))
tok.backend_tokenizer.pre_tokenizer = Split(Regex("."), "isolated")
w = lambda ids: "".join(ch(i) for i in ids)
# TRL appends EOS (id 2) to each answer.
pairs = [([1, 5, 9, 60], [3, 3, 7], [11]),
         ([4, 8], [42, 17, 29], [13, 14, 15, 16])]
ds = Dataset.from_list([{"prompt": w(p), "chosen": w(c), "rejected": w(r)} for p, c, r in pairs])

base = LlamaForCausalLM.from_pretrained(os.path.join(FIX, "untied"))
policy = PeftModel.from_pretrained(base, os.path.join(FIX, "lora"), is_trainable=True)
args = DPOConfig(output_dir=tempfile.mkdtemp(), beta=BETA, per_device_train_batch_size=2,
                 report_to=[], use_cpu=True, max_length=None, loss_type=["sigmoid"])
trainer = DPOTrainer(model=policy, ref_model=None, args=args, train_dataset=ds, processing_class=tok)
# Move the policy's adapter away from the reference's copy.
torch.manual_seed(4)
with torch.no_grad():
    for name, p in policy.named_parameters():
        if "lora_" in name and ".default." in name:
            p.add_(0.1 * torch.randn_like(p))
out = os.path.join(FIX, "dpo")
policy.save_pretrained(os.path.join(out, "policy"), selected_adapters=["default"])
rows = [trainer.train_dataset[i] for i in range(len(pairs))]
for (p, c, r), row in zip(pairs, rows):
    assert row["prompt_ids"] == p and row["chosen_ids"] == c + [2] and row["rejected_ids"] == r + [2], row
batch = trainer.data_collator(rows)
policy.train()
loss = trainer.compute_loss(policy, batch)
loss.backward()
ref = {"beta": torch.tensor([BETA]), "loss": loss.detach().reshape(1)}
for i, row in enumerate(rows):
    for k in ["prompt_ids", "chosen_ids", "rejected_ids"]:
        ref[f"pair{i}.{k}"] = torch.tensor(row[k], dtype=torch.int64)
for name, p in policy.named_parameters():
    if "lora_" in name and ".default." in name:
        short = name.replace("base_model.model.", "", 1).replace(".default", "")
        ref["grad." + short] = p.grad.contiguous()
save_file(ref, os.path.join(out, "reference.safetensors"))
import json
cfg_path = os.path.join(out, "policy", "adapter_config.json")
c = json.load(open(cfg_path))
c["base_model_name_or_path"] = "tiny-llama/untied"
json.dump(c, open(cfg_path, "w"), indent=2, sort_keys=True)
for extra in ["README.md"]:
    if os.path.exists(os.path.join(out, "policy", extra)):
        os.remove(os.path.join(out, "policy", extra))
print("TRL DPO sigmoid loss", loss.item())
