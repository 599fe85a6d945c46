"""PyTorch reference for fine-tuning speed on SmolLM2-135M-Instruct (f32
weights dequantized from the shared Q4_1 GGUF): training tokens/s of
forward + backward + AdamW step on random token rows, full fine-tuning or
LoRA through PEFT (same rank, alpha and target projections as
`kindling bench sft`), and peak resident memory. One JSON line.

Usage: .venv/bin/python bench/sft_pytorch.py [--lora-rank R] [--batch B] [--seq T] [--steps N] [--threads 2]"""
import argparse, json, os, resource, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))
p.add_argument("--lora-rank", type=int, default=0)
p.add_argument("--lora-alpha", type=float, default=16.0)
p.add_argument("--batch", type=int, default=2)
p.add_argument("--seq", type=int, default=256)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
from transformers import AutoModelForCausalLM
d, f = os.path.split(os.path.abspath(a.model))
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
model.config.use_cache = False
if a.lora_rank > 0:
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=a.lora_rank, lora_alpha=a.lora_alpha, lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], task_type="CAUSAL_LM"))
model.train()
params = [q for q in model.parameters() if q.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
g = torch.Generator().manual_seed(0)
times = []
for step in range(a.warmup + a.steps):
    ids = torch.randint(0, model.config.vocab_size, (a.batch, a.seq), generator=g)
    t0 = time.perf_counter()
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if step >= a.warmup:
        times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({
    "impl": "pytorch+peft" if a.lora_rank else "pytorch",
    "lora_rank": a.lora_rank, "batch": a.batch, "seq": a.seq, "threads": a.threads,
    "trainable_parameters": sum(q.numel() for q in params),
    "median_step_seconds": round(med, 4),
    "tokens_per_sec": round(a.batch * a.seq / med, 1),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
}))
