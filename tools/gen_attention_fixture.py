"""PyTorch reference for kindling-nn's MultiHeadAttention (crates/kindling-nn/src/attention.rs).

Writes crates/kindling-nn/tests/fixtures/mha.safetensors: torch.nn.MultiheadAttention
(batch_first, with biases) on two cases, its weights cut into q/k/v projections as
Kindling stores them, the outputs, the per-head attention weights
(average_attn_weights=False) and the gradients of a weighted sum of the output with
respect to the query input, the key/value input and every weight.

  self    encoder self-attention over x [2, 5, 8], 2 heads, key padding (row 0 has
          3 real tokens, row 1 has 5)
  cross   queries y [2, 3, 8] against context x [2, 5, 8] with the same padding
  causal  self-attention on y with attn_mask = the upper triangle

Run: .venv/bin/python tools/gen_attention_fixture.py (torch 2.x, safetensors).
"""
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates/kindling-nn/tests/fixtures/mha.safetensors")

torch.manual_seed(7)
C, H = 8, 2
x = torch.randn(2, 5, C)
y = torch.randn(2, 3, C)
pad = torch.tensor([[False, False, False, True, True], [False] * 5])  # True = padding
valid = (~pad).float()
causal = torch.triu(torch.ones(3, 3, dtype=torch.bool), diagonal=1)
tensors = {"x": x, "y": y, "valid": valid}


def case(name, q_in, kv_in, key_padding_mask=None, attn_mask=None):
    mha = torch.nn.MultiheadAttention(C, H, batch_first=True)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    q_in = q_in.clone().requires_grad_(True)
    kv_in = kv_in.clone().requires_grad_(True)
    out, w = mha(q_in, kv_in, kv_in, key_padding_mask=key_padding_mask,
                 attn_mask=attn_mask, need_weights=True, average_attn_weights=False)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    wq, wk, wv = mha.in_proj_weight.detach().chunk(3)
    bq, bk, bv = mha.in_proj_bias.detach().chunk(3)
    gwq, gwk, gwv = mha.in_proj_weight.grad.chunk(3)
    gbq, gbk, gbv = mha.in_proj_bias.grad.chunk(3)
    t = {
        "q_proj.weight": wq, "k_proj.weight": wk, "v_proj.weight": wv,
        "q_proj.bias": bq, "k_proj.bias": bk, "v_proj.bias": bv,
        "out_proj.weight": mha.out_proj.weight.detach(), "out_proj.bias": mha.out_proj.bias.detach(),
        "grad.q_proj.weight": gwq, "grad.k_proj.weight": gwk, "grad.v_proj.weight": gwv,
        "grad.q_proj.bias": gbq, "grad.k_proj.bias": gbk, "grad.v_proj.bias": gbv,
        "grad.out_proj.weight": mha.out_proj.weight.grad, "grad.out_proj.bias": mha.out_proj.bias.grad,
        "out": out.detach(), "probs": w.detach(), "out_weight": weight,
        "grad.q_in": q_in.grad,
    }
    if kv_in is not q_in:
        t["grad.kv_in"] = kv_in.grad
    for k, v in t.items():
        tensors[f"{name}.{k}"] = v.contiguous()


case("self", x, x, key_padding_mask=pad)
case("cross", y, x, key_padding_mask=pad)
case("causal", y, y, attn_mask=causal)
save_file(tensors, OUT, metadata={"generator": "tools/gen_attention_fixture.py"})
print("wrote", OUT, len(tensors), "tensors")
