#!/usr/bin/env python3
"""Parity fixtures for Kindling's recurrent layers (crates/kindling-nn/src/rnn.rs).

Regenerate (from the repo root):
    .venv/bin/python tools/gen_rnn_fixtures.py

Writes crates/kindling-nn/tests/fixtures/rnn.safetensors, committed so the
Rust test (crates/kindling-nn/tests/rnn.rs) never needs Python.
Generated with torch 2.15.0 on CPU, safetensors 0.8.0.

For each case (rnn, gru, lstm, gru_bi, lstm_bi), a torch.nn.RNN/GRU/LSTM with
num_layers=1, batch_first=True and PyTorch's own initialization from seed 3,
run in float64 on a fixed float32 input x [B=2, T=5, I=3] from a given initial
state:
  {case}.x                 input [2, 5, 3]
  {case}.h0, {case}.c0     initial states [D, 2, H] (c0 only for LSTM)
  {case}.<param name>      weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0
                           (and ..._l0_reverse when bidirectional), float32
  {case}.out               output [2, 5, D*H]
  {case}.hn, {case}.cn     final states [D, 2, H]
  {case}.gout, .ghn, .gcn  fixed upstream gradients for out, hn, cn
  {case}.grad.x, .grad.h0, .grad.c0, .grad.<param name>
                           d sum(out*gout + hn*ghn + cn*gcn) / d input
"""

import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates/kindling-nn/tests/fixtures/rnn.safetensors")

B, T, I, H = 2, 5, 3, 4


def case(name, cls, bidirectional, tensors, **kw):
    torch.manual_seed(3)
    d = 2 if bidirectional else 1
    layer = cls(I, H, num_layers=1, batch_first=True, bidirectional=bidirectional, **kw)
    x = torch.randn(B, T, I)
    h0 = torch.randn(d, B, H) * 0.5
    c0 = torch.randn(d, B, H) * 0.5
    layer = layer.double()
    xd = x.double().requires_grad_(True)
    h0d = h0.double().requires_grad_(True)
    c0d = c0.double().requires_grad_(True)
    is_lstm = cls is torch.nn.LSTM
    if is_lstm:
        out, (hn, cn) = layer(xd, (h0d, c0d))
    else:
        out, hn = layer(xd, h0d)
    gout = torch.randn(out.shape, dtype=torch.float64)
    ghn = torch.randn(hn.shape, dtype=torch.float64)
    loss = (out * gout).sum() + (hn * ghn).sum()
    if is_lstm:
        gcn = torch.randn(cn.shape, dtype=torch.float64)
        loss = loss + (cn * gcn).sum()
    loss.backward()
    f = lambda t: t.detach().float().contiguous()
    tensors[f"{name}.x"] = f(x)
    tensors[f"{name}.h0"] = f(h0)
    tensors[f"{name}.out"] = f(out)
    tensors[f"{name}.hn"] = f(hn)
    tensors[f"{name}.gout"] = f(gout)
    tensors[f"{name}.ghn"] = f(ghn)
    tensors[f"{name}.grad.x"] = f(xd.grad)
    tensors[f"{name}.grad.h0"] = f(h0d.grad)
    if is_lstm:
        tensors[f"{name}.c0"] = f(c0)
        tensors[f"{name}.cn"] = f(cn)
        tensors[f"{name}.gcn"] = f(gcn)
        tensors[f"{name}.grad.c0"] = f(c0d.grad)
    for pname, p in layer.named_parameters():
        tensors[f"{name}.{pname}"] = f(p)
        tensors[f"{name}.grad.{pname}"] = f(p.grad)


def main():
    tensors = {}
    case("rnn", torch.nn.RNN, False, tensors, nonlinearity="tanh")
    case("gru", torch.nn.GRU, False, tensors)
    case("lstm", torch.nn.LSTM, False, tensors)
    case("gru_bi", torch.nn.GRU, True, tensors)
    case("lstm_bi", torch.nn.LSTM, True, tensors)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT)
    print(f"wrote {len(tensors)} tensors to {OUT}")


if __name__ == "__main__":
    main()
