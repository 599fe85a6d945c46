#!/usr/bin/env python3
"""PyTorch reference throughput for `kindling lab resnet`: the same CIFAR
ResNet (He et al. 2016, section 4.2; option A shortcuts, or none for the
plain net) on 1x28x28 inputs, SGD momentum 0.9, weight decay 1e-4, batch
128, forward + backward + update timed on random data (the data path is not
what is compared). Prints one JSON object on its last stdout line.

Usage: bench/pytorch/resnet.py --depth 20 [--plain] [--steps 20] [--threads 2]
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride, residual):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual, self.pad = residual, cout - cin
        self.stride = stride

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        if self.residual:
            s = x[:, :, :: self.stride, :: self.stride]
            if self.pad:
                s = F.pad(s, (0, 0, 0, 0, 0, self.pad))
            h = h + s
        return F.relu(h)


class ResNet(nn.Module):
    def __init__(self, depth, residual):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for s, w in enumerate([16, 32, 64]):
            for b in range(n):
                blocks.append(Block(cin, w, 2 if s > 0 and b == 0 else 1, residual))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        h = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(h.mean((2, 3)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--plain", action="store_true")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ResNet(a.depth, not a.plain)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(a.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (a.batch_size,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    print(json.dumps({
        "depth": a.depth,
        "variant": "plain" if a.plain else "residual",
        "train_images_per_sec": a.steps * a.batch_size / dt,
        "torch": torch.__version__,
        "threads": a.threads,
    }))


if __name__ == "__main__":
    main()
