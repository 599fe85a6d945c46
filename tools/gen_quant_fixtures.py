#!/usr/bin/env python3
"""Generate the quantization fixtures: ggml's own bytes for the same f32 input.

Regenerate (from the repo root):
    .venv/bin/pip install gguf numpy safetensors
    # ggml: the llama-cpp-python package ships libggml-base.so, or point
    # GGML_LIB at any build of it (ggml/src, target ggml-base)
    .venv/bin/python tools/gen_quant_fixtures.py [--libggml PATH]

The output is committed, so the Rust tests never need Python:
  crates/kindling-tensor/tests/fixtures/quant.safetensors

Where the reference bytes come from:
  - ggml itself, through ctypes: `ggml_quantize_chunk` with no importance
    matrix runs `quantize_row_{q8_0,q4_0,q4_1,q4_K}_ref` (what llama-quantize
    writes), `ggml_fp32_to_fp16_row` the f32 -> f16 conversion.
  - gguf-py (`gguf.quants`), the numpy port of the same reference quantizers
    for Q8_0/Q4_0/Q4_1 and of every dequantizer; this script checks it against
    ggml on the same input and reports, and stores its dequantized values.

Tensors (little-endian; u8 tensors are raw block bytes):
  input              f32 [24, 256]  edge cases (rows 0-3) and random rows
  f16.input          f32 [n]        values at the f16 rounding edges
  f16.ggml           u8  [2n]       ggml_fp32_to_fp16_row of f16.input
  {t}.ggml           u8             ggml_quantize_chunk(t, input), t in q8_0 q4_0 q4_1 q4_k
  {t}.gguf_py        u8             gguf.quants.quantize(input, t), t in q8_0 q4_0 q4_1
  {t}.dequant        f32            gguf.quants.dequantize({t}.ggml), t in q8_0 q4_0 q4_1
  q4_k.ggml.dequant  f32            gguf.quants.dequantize(q4_k.ggml)
  q5_0.ggml          u8             ggml_quantize_chunk(Q5_0, input) (Kindling only reads Q5_0)
  q5_0.ggml.dequant  f32            gguf.quants.dequantize(q5_0.ggml)
  q4_k.random        u8             random Q4_K blocks (finite f16 d, dmin)
  q6_k.random        u8             random Q6_K blocks (finite f16 d)
  {q4_k,q6_k}.random.dequant f32    gguf.quants.dequantize of those bytes

Generated with gguf 0.19.0 (gguf-py), numpy 2.4.6, safetensors 0.8.0 and
libggml-base.so from llama-cpp-python 0.3.36 (its vendored llama.cpp),
built by pip with gcc 12 (ggml-base is compiled for baseline x86-64, so no
FMA contraction in the reference quantizers).
"""

import argparse
import ctypes
import glob
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/kindling-tensor/tests/fixtures/quant.safetensors"


def find_libggml(arg):
    if arg:
        return arg
    if os.environ.get("GGML_LIB"):
        return os.environ["GGML_LIB"]
    try:
        import llama_cpp  # noqa: F401

        for pat in ("lib/libggml-base.so", "lib/libggml-base.*", "**/libggml-base.so"):
            hits = glob.glob(str(Path(llama_cpp.__file__).parent / pat), recursive=True)
            if hits:
                return hits[0]
    except ImportError:
        pass
    sys.exit("ggml not found: install llama-cpp-python or pass --libggml / GGML_LIB")


class Ggml:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        f = self.lib.ggml_quantize_chunk
        f.restype = ctypes.c_size_t
        f.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                      ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
        self.lib.ggml_fp32_to_fp16_row.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
        self.lib.ggml_fp32_to_fp16_row.restype = None
        for t in ("q8_0", "q4_0", "q4_1", "q5_0", "q4_K", "q6_K"):
            g = getattr(self.lib, "dequantize_row_" + t)
            g.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
            g.restype = None

    def quantize(self, x, qtype):
        x = np.ascontiguousarray(x, dtype=np.float32)
        block, size = quants.GGML_QUANT_SIZES[qtype]
        rows, cols = x.shape
        out = np.zeros(rows * cols // block * size, dtype=np.uint8)
        n = self.lib.ggml_quantize_chunk(qtype.value, x.ctypes.data, out.ctypes.data, 0, rows, cols, None)
        assert n == out.size
        return out

    def dequantize(self, b, qtype):
        block, size = quants.GGML_QUANT_SIZES[qtype]
        out = np.zeros(b.size // size * block, dtype=np.float32)
        name = qtype.name.lower().replace("_k", "_K")
        getattr(self.lib, "dequantize_row_" + name)(b.ctypes.data, out.ctypes.data, out.size)
        return out

    def fp16(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros(x.size, dtype=np.uint16)
        self.lib.ggml_fp32_to_fp16_row(x.ctypes.data, out.ctypes.data, x.size)
        return out


def edge_rows(rng):
    """Rows 0-3: one case per 32-weight block (and per row for Q4_K)."""
    rows = np.zeros((4, 256), dtype=np.float32)
    # Row 0: all zeros.
    r = rows[1].reshape(8, 32)
    r[0] = rng.standard_normal(32) * 0.01
    r[0, 5] = 1000.0  # one huge value
    r[1] = rng.standard_normal(32) * 0.1
    r[1, 10] = -3.0  # the largest magnitude is negative
    r[2] = rng.standard_normal(32) * 0.5
    r[2, 3], r[2, 9] = 2.5, -2.5  # equal magnitudes, the first positive
    r[3] = rng.standard_normal(32) * 0.5
    r[3, 3], r[3, 9] = -2.5, 2.5  # equal magnitudes, the first negative
    r[4] = 0.7  # constant
    r[5] = -0.0  # negative zeros
    # Q8_0 ties: amax 127 gives d = 1, 1/d = 1, so x is x/d exactly.
    r[6] = [127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.5, -3.5, 4.5, 5.5, 6.5, -7.5, 8.5,
            9.5, 10.5, -11.5, 12.5, 0.25, 0.75, -0.25, 63.5, -64.5, 100.5, 1, 2, 3, -4, 0, 0]
    # Q4_0 boundaries: max -8 gives d = 1, x + 8.5 lands on integers.
    r[7] = np.concatenate([[-8.0], np.arange(-7.5, 7.0, 1.0), np.arange(-7.75, 7.5, 1.0)])
    r = rows[2].reshape(8, 32)
    # Q4_1 boundaries: min 0, max 15 gives d = 1, x + 0.5 lands on integers.
    r[0] = np.concatenate([[0.0, 15.0], np.arange(0.5, 15.0, 1.0), np.arange(0.25, 15, 1.0)])[:32]
    r[1] = rng.standard_normal(32) * 0.5
    r[1, ::4] = np.float32(1e-40)  # subnormals beside normal values
    r[2] = rng.standard_normal(32).astype(np.float32) * np.float32(1e-39)  # all subnormal: 1/d overflows
    r[3] = np.float32(1.4e-45) * np.sign(rng.standard_normal(32))  # the smallest subnormal
    r[4] = rng.standard_normal(32) * 1e6  # d = amax/127 still fits f16
    r[5] = rng.standard_normal(32) * 1e7  # d overflows f16 to inf
    r[5, 0] = 3e38
    r[6] = rng.standard_normal(32) * 1e-6  # d underflows to an f16 subnormal or zero
    r[7] = rng.standard_normal(32) * 3e38  # near f32's largest, both signs
    r = rows[3].reshape(8, 32)
    # Q4_K: sub-blocks of very different size (small ones get scale 0 and
    # keep make_qkx2_quants' levels), all positive, all negative.
    r[0] = rng.standard_normal(32) * 100
    r[1] = rng.standard_normal(32) * 1e-3
    r[2] = np.abs(rng.standard_normal(32)) + 1.0
    r[3] = -np.abs(rng.standard_normal(32)) - 1.0
    r[4] = 0.0
    # f16 ties in d = amax/127: 1 + 2^-11 rounds to 1, 1 + 3·2^-11 to 1 + 2^-9.
    r[5] = rng.uniform(-1, 1, 32)
    r[5, 0] = 127 * (1 + 2**-11)
    r[6] = rng.uniform(-1, 1, 32)
    r[6, 0] = -127 * (1 + 3 * 2**-11)
    r[7] = rng.standard_t(2, 32)  # heavy tails
    return rows


def random_rows(rng, n):
    scales = [1.0, 0.02, 100.0, 1e-3, 0.05]
    rows = []
    for i in range(n):
        s = scales[i % len(scales)]
        if i % 3 == 2:
            rows.append(rng.uniform(-s, s, 256))
        else:
            rows.append(rng.standard_normal(256) * s)
    return np.array(rows, dtype=np.float32)


def f16_table(rng):
    special = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.996, 65520.0, -65520.0, 70000.0, 6.1035156e-05,
               6.0975552e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, -2.9802322e-08,
               8.940697e-08, 1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-11 + 2**-20, 2048.5, 2049.0,
               1e-40, -1e-45, 3e38, np.inf, -np.inf]
    logs = rng.uniform(-30, 17, 2000)
    vals = np.exp2(logs) * np.sign(rng.standard_normal(2000))
    # values exactly halfway between neighbouring f16s
    h = rng.integers(0x0001, 0x7BFF, 500).astype(np.uint16)
    lo = h.view(np.float16).astype(np.float32)
    hi = (h + 1).view(np.float16).astype(np.float32)
    mid = (lo.astype(np.float64) + hi.astype(np.float64)) / 2
    return np.concatenate([special, vals, mid]).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--libggml", help="path to libggml-base.so")
    args = ap.parse_args()
    ggml = Ggml(find_libggml(args.libggml))
    rng = np.random.default_rng(13)
    x = np.concatenate([edge_rows(rng), random_rows(rng, 20)]).astype(np.float32)
    assert x.shape == (24, 256)
    out = {"input": x}

    fx = f16_table(rng)
    out["f16.input"] = fx
    out["f16.ggml"] = ggml.fp16(fx).view(np.uint8)
    assert np.array_equal(ggml.fp16(fx), fx.astype(np.float16).view(np.uint16)), "ggml f16 != numpy f16"

    for name, t in (("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("q4_1", T.Q4_1)):
        g = ggml.quantize(x, t)
        p = quants.quantize(x, t).reshape(-1)
        out[f"{name}.ggml"] = g
        out[f"{name}.gguf_py"] = p
        deq = quants.dequantize(g, t).reshape(-1).astype(np.float32)
        out[f"{name}.dequant"] = deq
        size = quants.GGML_QUANT_SIZES[t][1]
        bad = np.nonzero((g.reshape(-1, size) != p.reshape(-1, size)).any(axis=1))[0]
        print(f"{name}: gguf-py quantizer == ggml: {len(bad) == 0}"
              + (f" (blocks differ: {bad.tolist()})" if len(bad) else ""))
        gd = ggml.dequantize(g, t)
        same = np.array_equal(gd.view(np.uint32), deq.view(np.uint32))
        print(f"{name}: gguf-py dequantizer == ggml, bit for bit: {same}")

    g = ggml.quantize(x, T.Q4_K)
    out["q4_k.ggml"] = g
    out["q4_k.ggml.dequant"] = quants.dequantize(g, T.Q4_K).reshape(-1).astype(np.float32)
    print("q4_k: gguf-py dequantizer == ggml:",
          np.array_equal(ggml.dequantize(g, T.Q4_K).view(np.uint32), out["q4_k.ggml.dequant"].view(np.uint32)))

    # Q5_0: what llama.cpp writes for q4_k_m tensors whose rows are not a
    # whole number of 256-weight blocks (SmolLM2's 576 columns).
    g = ggml.quantize(x, T.Q5_0)
    out["q5_0.ggml"] = g
    out["q5_0.ggml.dequant"] = quants.dequantize(g, T.Q5_0).reshape(-1).astype(np.float32)
    print("q5_0: gguf-py dequantizer == ggml:",
          np.array_equal(ggml.dequantize(g, T.Q5_0).view(np.uint32), out["q5_0.ggml.dequant"].view(np.uint32)))

    for name, t, nblocks in (("q4_k", T.Q4_K, 16), ("q6_k", T.Q6_K, 16)):
        size = quants.GGML_QUANT_SIZES[t][1]
        b = rng.integers(0, 256, (nblocks, size), dtype=np.uint8)
        d = rng.uniform(1e-4, 2e-3, (nblocks, 2)).astype(np.float16).view(np.uint8)
        if t == T.Q4_K:
            b[:, 0:4] = d.reshape(nblocks, 4)  # d and dmin
        else:
            b[:, size - 2:] = d[:, :2]  # d is last
        b = b.reshape(-1)
        out[f"{name}.random"] = b
        out[f"{name}.random.dequant"] = quants.dequantize(b, t).reshape(-1).astype(np.float32)
        print(f"{name} random blocks: gguf-py dequantizer == ggml:",
              np.array_equal(ggml.dequantize(b, t).view(np.uint32), out[f"{name}.random.dequant"].view(np.uint32)))

    # gguf-py's own claim, on the kind of data its test uses (not stored).
    big = np.random.default_rng(1).standard_normal((256, 4096)).astype(np.float32)
    for t in (T.Q8_0, T.Q4_0, T.Q4_1):
        print(f"{t.name} on 1M normal values: gguf-py == ggml:",
              np.array_equal(quants.quantize(big, t).reshape(-1), ggml.quantize(big, t)))

    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, str(OUT))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
