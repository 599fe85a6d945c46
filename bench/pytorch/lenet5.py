#!/usr/bin/env python3
"""PyTorch reference benchmark: train LeNet-5 on MNIST (CPU).

Mirrors `kindling bench lenet5 --steps N --json` so the two can be compared.
Data loading and batch construction happen before timing; only
forward + backward + optimizer step are timed (after untimed warmup steps).

Prints a short human-readable line on stderr and exactly one JSON object
on the last line of stdout.
"""

import argparse
import gzip
import json
import os
import random
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn

EXPECTED_PARAMS = 61_706
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def default_data_dir():
    primary = "/work/main/data/mnist"
    if os.path.isdir(primary):
        return primary
    return os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "mnist"))


class LeNet5(nn.Module):
    def __init__(self, activation="relu", pool="max"):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        pool_layer = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2),   # C1: 6x28x28
            act(),
            pool_layer(kernel_size=2, stride=2),         # S2: 6x14x14
            nn.Conv2d(6, 16, kernel_size=5),             # C3: 16x10x10
            act(),
            pool_layer(kernel_size=2, stride=2),         # S4: 16x5x5
            nn.Conv2d(16, 120, kernel_size=5),           # C5: 120x1x1
            act(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(120, 84),                          # F6
            act(),
            nn.Linear(84, 10),                           # output
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def read_idx(path):
    """Read a (gzip) IDX file into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: bad IDX magic")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError(f"{path}: expected unsigned byte data, got type 0x{dtype_code:02x}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=offset)
    expected = int(np.prod(dims))
    if arr.size != expected:
        raise ValueError(f"{path}: expected {expected} values, found {arr.size}")
    return arr.reshape(dims)


def load_mnist_train(data_dir):
    """Return raw uint8 images [N,28,28] and int64 labels [N] (normalized per batch later)."""
    images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError("image/label count mismatch")
    return images, labels.astype(np.int64)


def synthetic_data(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.int64)
    return images, labels


def build_batches(images, labels, batch_size, num_batches, seed):
    """Seeded shuffle, then build normalized float32 batch tensors [B,1,28,28].

    Builds min(num_batches, one epoch) batches; the training loop cycles
    through them. Conversion is done per batch so no full-dataset float copy
    inflates peak RSS.
    """
    n = images.shape[0]
    full = n // batch_size
    if full == 0:
        raise ValueError(f"batch size {batch_size} larger than dataset ({n})")
    perm = np.random.default_rng(seed).permutation(n)
    batches = []
    for b in range(min(num_batches, full)):
        idx = perm[b * batch_size:(b + 1) * batch_size]
        xb = torch.from_numpy(images[idx].astype(np.float32)).unsqueeze(1)
        xb = ((xb / 255.0 - MNIST_MEAN) / MNIST_STD).contiguous()
        yb = torch.from_numpy(labels[idx].copy())
        batches.append((xb, yb))
    return batches


def make_optimizer(name, params):
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9)
    raise ValueError(name)


def main(argv=None):
    p = argparse.ArgumentParser(description="PyTorch LeNet-5 MNIST training benchmark")
    p.add_argument("--steps", type=int, default=200, help="timed training steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=20, help="untimed warmup steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="MNIST dir with gzip IDX train files")
    p.add_argument("--synthetic", action="store_true", help="use random data instead of MNIST")
    p.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    p.add_argument("--pool", choices=["max", "avg"], default="max")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    args = p.parse_args(argv)

    if args.steps < 1:
        p.error("--steps must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # can only be set once, before any inter-op work
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)

    total_steps = args.warmup + args.steps

    # ---- data (not timed) ----
    if args.synthetic:
        data_desc = "synthetic"
        n = args.batch_size * min(total_steps, 938)  # at most ~one MNIST epoch
        x, y = synthetic_data(n, args.seed + 1)
    else:
        data_dir = args.data or default_data_dir()
        img_path = os.path.join(data_dir, "train-images-idx3-ubyte.gz")
        if not os.path.isfile(img_path):
            print(f"error: MNIST not found at {data_dir} (use --data DIR or --synthetic)",
                  file=sys.stderr)
            return 2
        data_desc = data_dir
        x, y = load_mnist_train(data_dir)

    # Pre-build at most one epoch of batches (or as many as needed); cycle through them.
    batches = build_batches(x, y, args.batch_size, total_steps, args.seed)
    del x, y

    # ---- model ----
    model = LeNet5(args.activation, args.pool)
    n_params = sum(t.numel() for t in model.parameters())
    assert n_params == EXPECTED_PARAMS, f"LeNet-5 has {n_params} params, expected {EXPECTED_PARAMS}"
    model.train()
    opt = make_optimizer(args.optimizer, model.parameters())
    loss_fn = nn.CrossEntropyLoss()

    def step(i):
        xb, yb = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    # ---- warmup (not timed) ----
    for i in range(args.warmup):
        step(i)

    # ---- timed ----
    last_loss = None
    t0 = time.perf_counter()
    for i in range(args.warmup, total_steps):
        last_loss = step(i)
    elapsed = time.perf_counter() - t0
    final_loss = float(last_loss.item())  # after timing; CPU ops are synchronous anyway

    images = args.steps * args.batch_size
    ips = images / elapsed
    ms_per_step = elapsed * 1000.0 / args.steps
    # ru_maxrss is KiB on Linux (bytes on macOS).
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_rss_mb = maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0

    print(
        f"pytorch {torch.__version__} lenet5 [{args.activation}/{args.pool}/{args.optimizer}] "
        f"data={data_desc} threads={args.threads} batch={args.batch_size} steps={args.steps} "
        f"(warmup {args.warmup}): {ips:.1f} img/s, {ms_per_step:.3f} ms/step, "
        f"peak RSS {peak_rss_mb:.1f} MB, final loss {final_loss:.4f}",
        file=sys.stderr,
    )
    result = {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "train_images_per_sec": round(ips, 2),
        "ms_per_step": round(ms_per_step, 4),
        "peak_rss_mb": round(peak_rss_mb, 2),
        "params": n_params,
    }
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
