"""PyTorch reference for bench/train.ts: median ms per EfficientNetB0 training step (Adam, cross-entropy),
same block table as Keras/our tfjs builder, channels-last. Needs Debian's python3-torch (not a CI
dependency): run with /usr/bin/python3. Prints `size=N ms_per_step=T` lines."""

import argparse
import math
import os
import time

import torch
from torch import nn

# kernel, repeats, filters in, filters out, expand ratio, stride (Keras DEFAULT_BLOCKS_ARGS, se 0.25)
BLOCKS = [
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
]


class MBConv(nn.Module):
    def __init__(self, k, cin, cout, expand, stride):
        super().__init__()
        mid = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid, eps=1e-3), nn.SiLU()]
        layers += [
            nn.Conv2d(mid, mid, k, stride, padding=k // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid, eps=1e-3),
            nn.SiLU(),
        ]
        self.body = nn.Sequential(*layers)
        se = max(1, int(cin * 0.25))
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, se, 1), nn.SiLU(), nn.Conv2d(se, mid, 1), nn.Sigmoid()
        )
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        y = self.project(y * self.se(y))
        return y + x if self.skip else y


def b0(classes=4):
    layers = [nn.Conv2d(3, 32, 3, 2, padding=1, bias=False), nn.BatchNorm2d(32, eps=1e-3), nn.SiLU()]
    for k, repeats, cin, cout, expand, stride in BLOCKS:
        for j in range(repeats):
            layers.append(MBConv(k, cin if j == 0 else cout, cout, expand, stride if j == 0 else 1))
    layers += [nn.Conv2d(320, 1280, 1, bias=False), nn.BatchNorm2d(1280, eps=1e-3), nn.SiLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, classes)]
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--sizes", default="96,128,224")
    a = p.parse_args()
    # Debian's torch starts with one thread here; use the same count as the onednn engine.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count()))
    torch.manual_seed(0)
    for size in [int(s) for s in a.sizes.split(",")]:
        model = b0().to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = (torch.rand(a.batch, 3, size, size) * 255).to(memory_format=torch.channels_last)
        y = torch.arange(a.batch) % 4
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        for _ in range(a.warmup):
            step()
        times = []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            assert math.isfinite(step())
            times.append((time.perf_counter() - t0) * 1000)
        ms = sorted(times)[len(times) // 2]
        print(f"size={size} ms_per_step={ms:.1f} threads={torch.get_num_threads()} torch={torch.__version__}", flush=True)


if __name__ == "__main__":
    main()
