"""PyTorch parity fixtures for LLaMA's ops and a whole LLaMA's gradients.
Run: .venv/bin/python tools/gen_llama_fixtures.py  (after gen_tiny_llama_fixture.py)

Writes crates/kindling-models/tests/fixtures/llama_ops.safetensors, keys:
  rms.x, rms.w, rms.out, rms.gout, rms.grad_x, rms.grad_w      RMSNorm (eps 1e-5)
  rope.x [B,T,H,D], rope.cos/sin [T,D/2], rope.out, rope.gout, rope.grad_x
                                            transformers' apply_rotary_pos_emb
  silu.x, silu.out, silu.gout, silu.grad_x
  model.ids, model.targets [1,12] int64, model.loss, grad.<param name>
                                            tiny-llama/untied: cross-entropy
                                            loss and every parameter's gradient
Everything is computed in float64 from float32 inputs and stored as f32."""
import os
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates/kindling-models/tests/fixtures/llama_ops.safetensors")
torch.manual_seed(7)
t = {}

def grads(out, xs, prefix, names):
    gout = torch.randn(out.shape, dtype=torch.float64)
    (out * gout).sum().backward()
    t[f"{prefix}.out"] = out.detach()
    t[f"{prefix}.gout"] = gout
    for x, n in zip(xs, names):
        t[f"{prefix}.{n}"] = x.grad

x = torch.randn(3, 5, 16).double().requires_grad_()
w = (torch.rand(16) + 0.5).double().requires_grad_()
t["rms.x"], t["rms.w"] = x.detach(), w.detach()
var = x.pow(2).mean(-1, keepdim=True)
grads(w * (x * torch.rsqrt(var + 1e-5)), [x, w], "rms", ["grad_x", "grad_w"])

B, T, H, D = 2, 5, 3, 8
x = torch.randn(B, T, H, D).double().requires_grad_()
ang = torch.rand(T, D // 2).double() * 6 - 3
cos, sin = ang.cos(), ang.sin()
t["rope.x"], t["rope.cos"], t["rope.sin"] = x.detach(), cos, sin
full_cos = torch.cat([cos, cos], -1)[None, :, :]  # [1, T, D]
full_sin = torch.cat([sin, sin], -1)[None, :, :]
q = x.transpose(1, 2)  # [B, H, T, D], transformers' layout
qe, _ = apply_rotary_pos_emb(q, q, full_cos, full_sin)
grads(qe.transpose(1, 2), [x], "rope", ["grad_x"])

x = torch.randn(4, 7).double().requires_grad_()
t["silu.x"] = x.detach()
grads(F.silu(x), [x], "silu", ["grad_x"])

model = LlamaForCausalLM.from_pretrained(os.path.join(ROOT, "crates/kindling-models/tests/fixtures/tiny-llama/untied")).double()
model.train(False)
ids = torch.tensor([[1, 5, 9, 60, 3, 3, 7, 11, 0, 42, 17, 29]])
targets = torch.tensor([[5, 9, 60, 3, 3, 7, 11, 0, 42, 17, 29, 2]])
logits = model(ids).logits
loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
loss.backward()
t["model.ids"], t["model.targets"], t["model.loss"] = ids, targets, loss.detach()
for n, p in model.named_parameters():
    t[f"grad.{n}"] = p.grad

out = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in t.items()}
save_file(out, OUT, metadata={"generator": f"tools/gen_llama_fixtures.py, torch {torch.__version__}"})
print(f"wrote {len(out)} tensors to {OUT}; loss {loss.item():.6f}")
