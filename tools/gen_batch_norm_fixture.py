#!/usr/bin/env python3
"""PyTorch reference for Kindling's BatchNorm2d (crates/kindling-nn/src/batch_norm.rs).

Regenerate (from the repo root):
    .venv/bin/python tools/gen_batch_norm_fixture.py

Writes crates/kindling-nn/tests/fixtures/batch_norm.safetensors (seed 0),
computed in float64 and stored as float32:
  weight, bias                   [3] the module's gamma and beta
  x1, x2                         [4, 3, 5, 5] two training batches
  train1.out, train1.gout        forward of x1 in training mode and the upstream gradient
  train1.grad_x, .grad_w, .grad_b   d sum(out * gout) / d x, weight, bias
  train1.running_mean, .running_var after the x1 forward (momentum 0.1, unbiased var)
  train2.running_mean, .running_var after the x2 forward as well
  x3, eval.out, eval.gout, eval.grad_x, eval.grad_w, eval.grad_b
                                 evaluation mode (running statistics) on x3
"""
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "crates/kindling-nn/tests/fixtures/batch_norm.safetensors")


def main():
    torch.manual_seed(0)
    t = {}
    bn = torch.nn.BatchNorm2d(3, eps=1e-5, momentum=0.1).double()
    w, b = torch.randn(3) * 0.5 + 1.0, torch.randn(3) * 0.5
    with torch.no_grad():
        bn.weight.copy_(w)
        bn.bias.copy_(b)
    t["weight"], t["bias"] = w, b
    # Channel means and scales away from 0 and 1, so the statistics matter.
    shift = torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1)
    scale = torch.tensor([0.5, 2.0, 3.0]).view(1, 3, 1, 1)
    xs = [torch.randn(4, 3, 5, 5) * scale + shift for _ in range(3)]
    t["x1"], t["x2"], t["x3"] = xs

    def run(case, x):
        x64 = x.double().requires_grad_(True)
        bn.zero_grad()
        out = bn(x64)
        gout = torch.randn(out.shape)
        (out * gout.double()).sum().backward()
        t[f"{case}.out"] = out.detach()
        t[f"{case}.gout"] = gout
        t[f"{case}.grad_x"] = x64.grad
        t[f"{case}.grad_w"] = bn.weight.grad.clone()
        t[f"{case}.grad_b"] = bn.bias.grad.clone()

    bn.train()
    run("train1", xs[0])
    t["train1.running_mean"] = bn.running_mean.clone()
    t["train1.running_var"] = bn.running_var.clone()
    bn(xs[1].double())
    t["train2.running_mean"] = bn.running_mean.clone()
    t["train2.running_var"] = bn.running_var.clone()
    bn.eval()
    run("eval", xs[2])

    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in t.items()}
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    save_file(tensors, PATH, metadata={"generator": "tools/gen_batch_norm_fixture.py", "torch": torch.__version__})
    print(f"wrote {os.path.relpath(PATH, ROOT)} ({len(tensors)} tensors), torch {torch.__version__}")


if __name__ == "__main__":
    main()
