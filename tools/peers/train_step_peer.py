"""PyTorch peer of `pulmoseg train --bench`: seconds per training step of the identical network
(tools/fixtures/unet_reference.py) with the identical step — soft Dice (infiltrate) plus
cross-entropy, backward, Adam with decoupled weight decay (fastai's: β1 0.95, β2 0.99, ε 1e-5,
wd 1e-5) — on CPU threads, for the ratio burn / PyTorch.

Run: python3 tools/peers/train_step_peer.py --width 16 --dims 18x112x112 --batch 2 --steps 3
Prints one JSON line: {"width", "dims", "batch", "threads", "seconds_per_step", "loss"}.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from unet_reference import UNet  # noqa: E402


def loss_fn(logits, target, smooth=1.0):
    ce = F.cross_entropy(logits, target.long())
    p = torch.softmax(logits, dim=1)[:, 1]
    dice = (2 * (p * target).sum() + smooth) / (p.sum() + target.sum() + smooth)
    return ce + 1 - dice


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--dims", default="18x112x112")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    d, h, w = (int(v) for v in args.dims.split("x"))
    device = torch.device(args.device)
    model = UNet(args.width).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.95, 0.99), eps=1e-5,
                            weight_decay=1e-5)
    # The same synthetic batch as the Rust bench: a smooth intensity pattern and a centred
    # ellipsoid mask.
    z, y, x = torch.meshgrid(torch.linspace(-1, 1, d), torch.linspace(-1, 1, h),
                             torch.linspace(-1, 1, w), indexing="ij")
    image = (0.5 + 0.25 * torch.sin(3 * x) * torch.cos(2 * y) + 0.1 * z)
    mask = ((x / 0.4) ** 2 + (y / 0.3) ** 2 + (z / 0.6) ** 2 < 1).float()
    image = image.expand(args.batch, 1, d, h, w).contiguous().to(device)
    mask = mask.expand(args.batch, d, h, w).contiguous().to(device)

    times = []
    loss = None
    for _ in range(args.steps + 1):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(image), mask)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    # The first step includes one-off allocation; report the mean of the others.
    per_step = sum(times[1:]) / len(times[1:])
    print(json.dumps({"width": args.width, "dims": [d, h, w], "batch": args.batch,
                      "threads": args.threads, "device": args.device,
                      "seconds_per_step": per_step, "loss": float(loss.detach())}))


if __name__ == "__main__":
    main()
