"""A tiny random LLaMA reward model saved by `transformers`
(`LlamaForSequenceClassification`, one label: a scalar reward read at the
last token), with its rewards for fixed sequences, for the Rust test that
loads it. Run: .venv/bin/python tools/gen_reward_fixture.py"""
import os
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForSequenceClassification

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                   "crates/kindling-models/tests/fixtures/tiny-llama/reward")
torch.manual_seed(2)
cfg = LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rms_norm_eps=1e-5, rope_theta=500.0, num_labels=1, pad_token_id=0)
model = LlamaForSequenceClassification(cfg).eval()
with torch.no_grad():
    for n, p in model.named_parameters():
        if "norm" in n:
            p.uniform_(0.5, 1.5)
        if n == "score.weight":
            p.normal_(0.0, 0.5)
model.save_pretrained(OUT, safe_serialization=True)
seqs = [[1, 5, 9, 60, 3, 3, 7], [11, 4, 42, 17, 29, 8, 2, 19, 33], [6]]
ref = {}
with torch.no_grad():
    for i, s in enumerate(seqs):
        ids = torch.tensor([s])
        ref[f"ids.{i}"] = ids[0].to(torch.int64)
        ref[f"reward.{i}"] = model(ids).logits[0].contiguous()  # [1]
    # A right-padded batch: transformers reads each row at its last non-pad token.
    batch = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    for i, s in enumerate(seqs):
        batch[i, :len(s)] = torch.tensor(s)
    ref["batch_rewards"] = model(batch, attention_mask=(batch != 0).long()).logits[:, 0].contiguous()
save_file(ref, os.path.join(OUT, "reference.safetensors"))
gc = os.path.join(OUT, "generation_config.json")
if os.path.exists(gc):
    os.remove(gc)
print({k: v.tolist() for k, v in ref.items() if "reward" in k})
