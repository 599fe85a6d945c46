#!/usr/bin/env python3
"""Generate Kindling's golden test fixtures with PyTorch.

Regenerate (from the repo root):
    python3 -m venv .venv && .venv/bin/pip install torch safetensors numpy
    .venv/bin/python tools/gen_fixtures.py

The generated .safetensors files are committed, so CI and the Rust tests never
need PyTorch or Python; this script is only rerun when a fixture changes.
Generated with torch 2.15.0 (PyPI wheel 2.15.0+cu132, run on CPU),
safetensors 0.8.0, numpy 2.4.6.

Outputs:
  crates/kindling-tensor/tests/fixtures/ops.safetensors  per-op forward/backward
  crates/kindling-nn/tests/fixtures/mlp_step.safetensors tiny MLP + optimizers
  crates/kindling-tensor/tests/fixtures/conv.safetensors conv/pool ops + LeNet-5
  crates/kindling-models/tests/fixtures/gpt.safetensors  tiny char GPT + attention/LN

Conventions (ops.safetensors), for each case:
  {case}.x0, .x1, ...   float32 inputs
  {case}.idx            int64 index/target tensor (only where the case has one)
  {case}.mask           float32 0.0/1.0 mask (only where the case has one)
  {case}.out            output
  {case}.gout           upstream gradient, same shape as out (0-dim 1.0 for scalars)
  {case}.grad0, ...     d sum(out * gout) / d x_i, for each float input
conv.safetensors uses the same conventions, from its own seed (1), so adding
cases there never disturbs ops.safetensors or mlp_step.safetensors.
gpt.safetensors (seed 2) uses bench/pytorch/chargpt.py's GPT and its own keys:
  <param name>          float32 parameters (wte.weight, wpe.weight, h.0.ln_1.weight,
                        ..., ln_f.bias; lm_head is tied to wte.weight, not stored)
  idx, targets          int64 [2,8]; targets[1,3] = -1 is ignored by the loss
  logits, loss          forward in float64 from the float32 params, stored f32
  grad.<param name>     d loss / d param (float64 math, stored f32)
  grad_norm             global L2 norm of those grads, before clipping
  adamw.<param name>    params after clip_grad_norm_(1.0) + one AdamW step
  attn.*, ln.*          causal attention and layer norm forward/backward
"""

import copy
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS_PATH = os.path.join(ROOT, "crates/kindling-tensor/tests/fixtures/ops.safetensors")
MLP_PATH = os.path.join(ROOT, "crates/kindling-nn/tests/fixtures/mlp_step.safetensors")
CONV_PATH = os.path.join(ROOT, "crates/kindling-tensor/tests/fixtures/conv.safetensors")
GPT_PATH = os.path.join(ROOT, "crates/kindling-models/tests/fixtures/gpt.safetensors")
# A single metadata key: safetensors writes this map in hash order, so two
# keys would make the file bytes differ from run to run.
META = {"generator": f"tools/gen_fixtures.py, torch {torch.__version__}"}


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def uniform(lo, hi, *shape):
    return torch.empty(*shape, dtype=torch.float32).uniform_(lo, hi)


def away_from_zero(*shape):
    # |x| >= 0.1 keeps abs/relu away from their kink, where the derivative
    # is a convention rather than a fact.
    sign = torch.randint(0, 2, shape).to(torch.float32) * 2 - 1
    return sign * uniform(0.1, 2.0, *shape)


def rand_mask(*shape):
    return torch.randint(0, 2, shape).to(torch.float32)


def run_case(tensors, name, xs, fn, idx=None, mask=None):
    """Evaluate fn in float64 on the float32 inputs and record everything.

    Computing in float64 from the exact f32 values makes the stored out/grads
    the correctly rounded answer, so the Rust side can use tight tolerances.
    fn receives (list of f64 leaf tensors, idx, mask_bool) and returns out, or
    (out, {suffix: extra_tensor}) for cases with additional outputs.
    """
    xs64 = [x.to(torch.float64).requires_grad_(True) for x in xs]
    mask_b = mask.bool() if mask is not None else None
    res = fn(xs64, idx, mask_b)
    extra = {}
    if isinstance(res, tuple):
        res, extra = res
    out = res
    if out.dim() == 0:
        gout = torch.tensor(1.0, dtype=torch.float32)
    else:
        gout = randn(*out.shape)
    grads = torch.autograd.grad(
        (out * gout.to(torch.float64)).sum(), xs64, allow_unused=True
    )

    for i, x in enumerate(xs):
        tensors[f"{name}.x{i}"] = x
    if idx is not None:
        tensors[f"{name}.idx"] = idx.to(torch.int64)
    if mask is not None:
        tensors[f"{name}.mask"] = mask
    tensors[f"{name}.out"] = out.detach().to(torch.float32)
    tensors[f"{name}.gout"] = gout
    for i, (x, g) in enumerate(zip(xs64, grads)):
        # An input the output doesn't depend on has a zero gradient.
        g = torch.zeros_like(x) if g is None else g
        tensors[f"{name}.grad{i}"] = g.to(torch.float32)
    for k, v in extra.items():
        tensors[f"{name}.{k}"] = v


def gen_ops():
    t = {}

    # Elementwise binary ops, including broadcasting on either side.
    run_case(t, "add", [randn(3, 4), randn(4)], lambda x, i, m: x[0] + x[1])
    run_case(t, "sub", [randn(2, 3, 4), randn(3, 1)], lambda x, i, m: x[0] - x[1])
    run_case(t, "mul", [randn(3, 4), randn(3, 4)], lambda x, i, m: x[0] * x[1])
    # Divisor kept in [0.5, 2] so the quotient and its gradient stay tame.
    run_case(t, "div", [randn(3, 4), uniform(0.5, 2.0, 1, 4)], lambda x, i, m: x[0] / x[1])

    # Elementwise unary ops; domains restricted where the op needs it.
    run_case(t, "neg", [randn(5)], lambda x, i, m: -x[0])
    run_case(t, "powf", [uniform(0.5, 2.0, 3, 4)], lambda x, i, m: x[0] ** 2.5)
    run_case(t, "exp", [randn(3, 5)], lambda x, i, m: x[0].exp())
    run_case(t, "log", [uniform(0.5, 2.0, 3, 5)], lambda x, i, m: x[0].log())
    run_case(t, "sqrt", [uniform(0.5, 2.0, 3, 5)], lambda x, i, m: x[0].sqrt())
    run_case(t, "abs", [away_from_zero(3, 5)], lambda x, i, m: x[0].abs())
    run_case(t, "tanh", [randn(3, 5)], lambda x, i, m: x[0].tanh())
    run_case(t, "sigmoid", [randn(3, 5)], lambda x, i, m: x[0].sigmoid())
    run_case(t, "relu", [away_from_zero(3, 5)], lambda x, i, m: F.relu(x[0]))
    run_case(t, "gelu_tanh", [randn(3, 5)], lambda x, i, m: F.gelu(x[0], approximate="tanh"))
    run_case(t, "gelu_erf", [randn(3, 5)], lambda x, i, m: F.gelu(x[0], approximate="none"))

    # Reductions.
    run_case(t, "sum_axis", [randn(3, 4, 5)], lambda x, i, m: x[0].sum(dim=1))
    run_case(t, "sum_all", [randn(3, 4)], lambda x, i, m: x[0].sum())
    run_case(t, "mean_axes", [randn(3, 4, 5)], lambda x, i, m: x[0].mean(dim=(0, 2)))

    def max_axis(x, i, m):
        r = x[0].max(dim=1)
        return r.values, {"argmax": r.indices.to(torch.int64)}

    run_case(t, "max_axis", [randn(4, 6)], max_axis)

    # Matrix products: plain, batched, broadcast batch, transposed operand.
    run_case(t, "matmul", [randn(3, 4), randn(4, 5)], lambda x, i, m: x[0] @ x[1])
    run_case(t, "bmm", [randn(2, 3, 4), randn(2, 4, 5)], lambda x, i, m: x[0] @ x[1])
    run_case(t, "matmul_bcast", [randn(2, 3, 4), randn(4, 5)], lambda x, i, m: x[0] @ x[1])
    # x0 is stored as [4,3]; the Rust test transposes it to get a
    # non-contiguous view, so grad0 has x0's stored [4,3] shape.
    run_case(t, "matmul_t", [randn(4, 3), randn(4, 5)], lambda x, i, m: x[0].T @ x[1])

    # Softmax family and losses.
    run_case(t, "softmax", [randn(3, 7)], lambda x, i, m: F.softmax(x[0], dim=-1))
    run_case(t, "log_softmax", [randn(3, 7)], lambda x, i, m: F.log_softmax(x[0], dim=-1))
    targets = torch.randint(0, 5, (6,), dtype=torch.int64)
    targets[2] = -100  # one ignored row: mean must be over the 5 others
    run_case(
        t, "cross_entropy", [randn(6, 5)],
        lambda x, i, m: F.cross_entropy(x[0], i, ignore_index=-100),
        idx=targets,
    )
    run_case(t, "mse", [randn(4, 3), randn(4, 3)], lambda x, i, m: F.mse_loss(x[0], x[1]))

    # Selection by mask.
    run_case(
        t, "where", [randn(3, 4), randn(3, 4)],
        lambda x, i, m: torch.where(m, x[0], x[1]),
        mask=rand_mask(3, 4),
    )
    run_case(
        t, "masked_fill", [randn(3, 4)],
        lambda x, i, m: x[0].masked_fill(m, -2.0),
        mask=rand_mask(3, 4),
    )

    # Shape ops.
    run_case(t, "cat", [randn(2, 3), randn(2, 4)], lambda x, i, m: torch.cat([x[0], x[1]], dim=1))
    run_case(t, "stack", [randn(2, 3), randn(2, 3)], lambda x, i, m: torch.stack([x[0], x[1]], dim=0))

    # Indexing; repeated indices check that backward accumulates, not overwrites.
    run_case(
        t, "index_select", [randn(5, 3)],
        lambda x, i, m: x[0].index_select(0, i),
        idx=torch.tensor([4, 0, 4, 2], dtype=torch.int64),
    )
    gidx = torch.randint(0, 5, (3, 2), dtype=torch.int64)
    gidx[0, 1] = gidx[0, 0]  # guarantee a repeat within a row
    run_case(t, "gather", [randn(3, 5)], lambda x, i, m: x[0].gather(1, i), idx=gidx)
    ids = torch.randint(0, 10, (2, 3), dtype=torch.int64)
    ids[1, 2] = ids[0, 0]  # guarantee a repeated id
    run_case(t, "embedding", [randn(10, 4)], lambda x, i, m: F.embedding(i, x[0]), idx=ids)

    run_case(
        t, "layer_norm", [randn(3, 8), randn(8), randn(8)],
        lambda x, i, m: F.layer_norm(x[0], (8,), x[1], x[2], eps=1e-5),
    )
    return t


def gen_mlp():
    # float32 end to end, as a real training step runs, so the Rust side is
    # compared against what PyTorch's f32 optimizers actually produce.
    t = {}
    x = randn(8, 3)
    y = torch.randint(0, 2, (8,), dtype=torch.int64)
    init = {
        "w1": randn(4, 3) * 0.5,  # nn.Linear layout: weight is [out, in]
        "b1": randn(4) * 0.5,
        "w2": randn(2, 4) * 0.5,
        "b2": randn(2) * 0.5,
    }
    names = ["w1", "b1", "w2", "b2"]

    def fresh():
        return {k: init[k].clone().requires_grad_(True) for k in names}

    def loss_fn(p):
        h = torch.tanh(x @ p["w1"].T + p["b1"])
        logits = h @ p["w2"].T + p["b2"]
        return F.cross_entropy(logits, y)

    t["x"] = x
    t["y"] = y
    for k in names:
        t[k] = init[k]

    p = fresh()
    loss = loss_fn(p)
    loss.backward()
    t["loss"] = loss.detach()
    for k in names:
        t[f"grad.{k}"] = p[k].grad.clone()

    optimizers = {
        "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
        "nesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
        "adamw": lambda ps: torch.optim.AdamW(
            ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1
        ),
    }
    for prefix, make in optimizers.items():
        # Each optimizer starts from the same initial params, same batch.
        p = fresh()
        opt = make([p[k] for k in names])
        for _ in range(3):
            opt.zero_grad()
            loss_fn(p).backward()
            opt.step()
        for k in names:
            t[f"{prefix}.{k}"] = p[k].detach().clone()
    return t


def distinct(*shape):
    # A shuffled arange, scaled by a power of two so every value is exact in
    # f32: no ties, so max-pool's argmax (and its gradient) is unambiguous.
    n = 1
    for d in shape:
        n *= d
    perm = torch.randperm(n).to(torch.float32)
    return ((perm - n / 2) / 32.0).reshape(*shape)


def gen_conv():
    t = {}

    # 2-D convolution, NCHW input, weight [out_c, in_c, kh, kw].
    run_case(
        t, "conv2d_pad", [randn(2, 3, 7, 7), randn(4, 3, 3, 3), randn(4)],
        lambda x, i, m: F.conv2d(x[0], x[1], x[2], stride=1, padding=1),
    )
    # Non-square kernel, H != W, stride 2 with a leftover row/column.
    run_case(
        t, "conv2d_stride", [randn(2, 2, 9, 8), randn(3, 2, 3, 2), randn(3)],
        lambda x, i, m: F.conv2d(x[0], x[1], x[2], stride=2, padding=0),
    )
    run_case(
        t, "conv2d_lenet_c1", [randn(2, 1, 12, 12), randn(6, 1, 5, 5), randn(6)],
        lambda x, i, m: F.conv2d(x[0], x[1], x[2], stride=1, padding=2),
    )
    run_case(
        t, "conv2d_nobias", [randn(1, 2, 6, 6), randn(2, 2, 3, 3)],
        lambda x, i, m: F.conv2d(x[0], x[1], None, stride=1, padding=0),
    )

    # Pooling. Max-pool inputs have distinct values (no ties); k3s2 windows
    # overlap, so backward must accumulate.
    run_case(
        t, "max_pool2d", [distinct(2, 3, 8, 8)],
        lambda x, i, m: F.max_pool2d(x[0], kernel_size=2, stride=2),
    )
    run_case(
        t, "max_pool2d_k3s2", [distinct(1, 2, 7, 7)],
        lambda x, i, m: F.max_pool2d(x[0], kernel_size=3, stride=2),
    )
    run_case(
        t, "avg_pool2d", [randn(2, 3, 8, 8)],
        lambda x, i, m: F.avg_pool2d(x[0], kernel_size=2, stride=2),
    )
    run_case(
        t, "avg_pool2d_k3s2", [randn(1, 2, 7, 7)],
        lambda x, i, m: F.avg_pool2d(x[0], kernel_size=3, stride=2),
    )

    # Whole LeNet-5 forward + backward on a batch, parameters initialised by
    # PyTorch's default Conv2d/Linear init (built in this order from the seed).
    mods = [
        torch.nn.Conv2d(1, 6, 5),  # c1 (padding 2 applied below)
        torch.nn.Conv2d(6, 16, 5),  # c3
        torch.nn.Conv2d(16, 120, 5),  # c5
        torch.nn.Linear(120, 84),  # f6
        torch.nn.Linear(84, 10),  # out
    ]
    params = []
    for mod in mods:
        params += [mod.weight.detach().clone(), mod.bias.detach().clone()]
    images = randn(4, 1, 28, 28)
    labels = torch.randint(0, 10, (4,), dtype=torch.int64)

    def lenet5(x, i, m):
        h = F.relu(F.conv2d(x[0], x[1], x[2], padding=2))  # [4,6,28,28]
        h = F.max_pool2d(h, 2, 2)  # [4,6,14,14]
        h = F.relu(F.conv2d(h, x[3], x[4]))  # [4,16,10,10]
        h = F.max_pool2d(h, 2, 2)  # [4,16,5,5]
        h = F.relu(F.conv2d(h, x[5], x[6]))  # [4,120,1,1]
        h = h.flatten(1)  # [4,120]
        h = F.relu(F.linear(h, x[7], x[8]))  # [4,84]
        logits = F.linear(h, x[9], x[10])  # [4,10]
        return F.cross_entropy(logits, i)

    run_case(t, "lenet5", [images] + params, lenet5, idx=labels)
    return t


def gen_gpt():
    # The same module code as the PyTorch reference benchmark, so the names
    # and init match what Kindling's GPT loads.
    sys.path.insert(0, os.path.join(ROOT, "bench", "pytorch"))
    from chargpt import GPT, GPTConfig, configure_optimizer

    t = {}
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16,
                    dropout=0.0, bias=True)
    model = GPT(cfg)  # float32, explicit (masked softmax) attention
    idx = torch.randint(0, 11, (2, 8), dtype=torch.int64)
    targets = torch.randint(0, 11, (2, 8), dtype=torch.int64)
    targets[1, 3] = -1  # ignored: the mean is over the other 15 positions

    # float64 copy of the exact float32 values gives the reference answers.
    # deepcopy + .double() keep the lm_head/wte tie (same Parameter object).
    model64 = copy.deepcopy(model).double()
    assert model64.lm_head.weight is model64.wte.weight
    names = [n for n, _ in model.named_parameters()]  # tied weight listed once
    assert "lm_head.weight" not in names
    params64 = [p for _, p in model64.named_parameters()]
    logits, loss = model64(idx, targets)
    grads = torch.autograd.grad(loss, params64)

    for n, p in model.named_parameters():
        t[n] = p.detach().clone()
    t["idx"] = idx
    t["targets"] = targets
    t["logits"] = logits.detach().to(torch.float32)
    t["loss"] = loss.detach().to(torch.float32)
    for n, g in zip(names, grads):
        t[f"grad.{n}"] = g.to(torch.float32)

    # One optimizer step in float32 (as training runs it), starting from the
    # stored float32 grads: global-norm clip to 1.0 (torch divides by
    # norm + 1e-6), then AdamW with decay only on non-embedding 2-D weights.
    for (n, p), g in zip(model.named_parameters(), grads):
        p.grad = g.to(torch.float32).clone()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    t["grad_norm"] = norm.detach().to(torch.float32)
    opt = configure_optimizer(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99), eps=1e-8)
    opt.step()
    for n, p in model.named_parameters():
        t[f"adamw.{n}"] = p.detach().clone()

    # Causal attention on its own, [B,H,T,D] = [2,2,5,4], float64 math.
    qkv = [randn(2, 2, 5, 4) for _ in range(3)]
    q, k, v = [x.to(torch.float64).requires_grad_(True) for x in qkv]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(4)
    causal = torch.tril(torch.ones(5, 5, dtype=torch.bool))
    att = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
    out = att @ v
    gout = randn(2, 2, 5, 4)
    gq, gk, gv = torch.autograd.grad((out * gout.to(torch.float64)).sum(), [q, k, v])
    t["attn.q"], t["attn.k"], t["attn.v"] = qkv
    t["attn.out"] = out.detach().to(torch.float32)
    t["attn.gout"] = gout
    t["attn.grad_q"] = gq.to(torch.float32)
    t["attn.grad_k"] = gk.to(torch.float32)
    t["attn.grad_v"] = gv.to(torch.float32)

    # Layer norm over the last axis of a 3-D input, float64 math.
    lx, lw, lb = randn(3, 5, 8), randn(8), randn(8)
    x64, w64, b64 = [a.to(torch.float64).requires_grad_(True) for a in (lx, lw, lb)]
    out = F.layer_norm(x64, (8,), w64, b64, eps=1e-5)
    gout = randn(3, 5, 8)
    gx, gw, gb = torch.autograd.grad((out * gout.to(torch.float64)).sum(), [x64, w64, b64])
    t["ln.x"], t["ln.w"], t["ln.b"] = lx, lw, lb
    t["ln.out"] = out.detach().to(torch.float32)
    t["ln.gout"] = gout
    t["ln.grad_x"] = gx.to(torch.float32)
    t["ln.grad_w"] = gw.to(torch.float32)
    t["ln.grad_b"] = gb.to(torch.float32)
    return t


def write(path, tensors):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # save_file needs contiguous tensors that don't share storage.
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, path, metadata=META)
    back = load_file(path)
    assert set(back) == set(tensors), "key mismatch on reload"
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(tensors)} tensors)")
    for k in tensors:
        v = tensors[k]
        print(f"  {k:28s} {str(v.dtype).replace('torch.', ''):8s} {list(v.shape)}")


def main():
    torch.manual_seed(0)
    print(f"torch {torch.__version__}")
    write(OPS_PATH, gen_ops())
    write(MLP_PATH, gen_mlp())
    # Its own seed: conv cases draw from a fresh stream, after the others.
    torch.manual_seed(1)
    write(CONV_PATH, gen_conv())
    # Its own seed again, so the GPT fixture leaves the others untouched.
    torch.manual_seed(2)
    write(GPT_PATH, gen_gpt())


if __name__ == "__main__":
    main()
