"""PyTorch reference for `amcl-train bench`: the same model, loss and training step, timed the
same way, so the two can be compared on one machine.

Model (as crates/amcl-core/src/model): CIFAR normalisation; the small CNN (7 x [3x3 conv without
bias, batch norm, ReLU], widths w,2w,2w,4w,4w,8w,8w, strides 1,2,1,2,1,2,1, global average pool)
or ResNet-18 with the CIFAR stem; C projection heads Linear(f, hidden)-ReLU-Linear(hidden, d),
L2-normalised; one temperature network shared by the heads, phi = Linear(d, 128)-ReLU-
Linear(128, d), tau = lo + (hi - lo) sigmoid(-<phi(z_a), phi(z_b)>) in (1e-5, 2) for every ordered
pair of the 2N views (one matrix product, as amcl-core does). Objective: AMCL-SimCLR (soft
"logsumexp" or "max" form, beta = 1e-4) or plain multi-head SimCLR (NT-Xent, t = 0.5, summed
over heads).
Step: both views through the backbone separately, loss, backward, SGD (momentum 0.9, weight
decay 5e-4). As in `amcl-train bench`, the two views are made before the timer starts.

    python benches/pytorch/bench.py --method amcl-simclr --backbone small-cnn --width 32 \
        --heads 4 --batch-size 128 --json
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class ConvBn(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)
        )


class SmallCnn(nn.Module):
    PLAN = [(1, 1), (2, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1)]

    def __init__(self, width):
        super().__init__()
        layers, c_in = [], 3
        for mult, stride in self.PLAN:
            layers += [ConvBn(c_in, mult * width, 3, stride), nn.ReLU()]
            c_in = mult * width
        self.layers = nn.Sequential(*layers)
        self.features = c_in

    def forward(self, x):
        return self.layers(x).mean(dim=(2, 3))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.first = ConvBn(c_in, c_out, 3, stride)
        self.second = ConvBn(c_out, c_out, 3, 1)
        self.shortcut = ConvBn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        y = F.relu(self.first(x))
        return F.relu(self.second(y) + identity)


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBn(3, 64, 3, 1)
        blocks, c_in = [], 64
        for c_out, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            blocks += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.features = 512

    def forward(self, x):
        return self.blocks(F.relu(self.stem(x))).mean(dim=(2, 3))


class TemperatureNet(nn.Module):
    def __init__(self, dim, lo=1e-5, hi=2.0):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, dim))
        self.lo, self.hi = lo, hi

    def pairwise(self, z):
        """Temperatures of every ordered pair of rows of z [M, d]: [M, M]."""
        p = self.phi(z)
        return self.lo + (self.hi - self.lo) * torch.sigmoid(-(p @ p.t()))


class Model(nn.Module):
    def __init__(self, backbone, width, heads, hidden, dim):
        super().__init__()
        self.backbone = SmallCnn(width) if backbone == "small-cnn" else ResNet18()
        f = self.backbone.features
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(f, hidden), nn.ReLU(), nn.Linear(hidden, dim))
            for _ in range(heads)
        )
        self.temperature = TemperatureNet(dim)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def project(self, images):
        features = self.backbone((images - self.mean) / self.std)
        return [F.normalize(head(features), dim=1, eps=1e-8) for head in self.heads]


def omega(tau, dim):
    return 0.5 * dim * torch.log(tau) + 1.0 / tau


def amcl_simclr(model, za, zb, beta, reduction):
    n, dim = za[0].shape
    loss = 0.0
    device = za[0].device
    eye = torch.eye(2 * n, dtype=torch.bool, device=device)
    positive = (torch.arange(2 * n, device=device) + n) % (2 * n)
    neg_mask = ~(eye | F.one_hot(positive, 2 * n).bool())
    for c, (a, b) in enumerate(zip(za, zb)):
        z = torch.cat([a, b])
        sim = z @ z.t()
        tau = model.temperature.pairwise(z)
        rows = torch.arange(2 * n, device=device)
        pos_sim, pos_tau = sim[rows, positive], tau[rows, positive]
        neg_sim = sim[neg_mask].view(2 * n, 2 * n - 2)
        neg_tau = tau[neg_mask].view(2 * n, 2 * n - 2)
        pos_scaled, neg_scaled = pos_sim / pos_tau, neg_sim / neg_tau
        term = -pos_scaled + beta * omega(pos_tau, dim)
        if reduction == "max":
            hardest, index = neg_scaled.max(dim=1)
            term = term + hardest - beta * omega(neg_tau.gather(1, index[:, None])[:, 0], dim)
        else:
            logits = torch.cat([pos_scaled[:, None], neg_scaled], dim=1)
            weights = torch.softmax(neg_scaled, dim=1)
            term = term + torch.logsumexp(logits, dim=1)
            term = term - beta * (weights * omega(neg_tau, dim)).sum(dim=1)
        loss = loss + term.mean()
    return loss


def nt_xent(a, b, temperature):
    n = a.shape[0]
    z = torch.cat([a, b])
    logits = (z @ z.t()) / temperature
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, -1e9)
    return F.cross_entropy(logits, (torch.arange(2 * n, device=z.device) + n) % (2 * n))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="amcl-simclr", choices=["amcl-simclr", "simclr"])
    p.add_argument("--backbone", default="small-cnn", choices=["small-cnn", "resnet18"])
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--heads", type=int, default=3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--reduction", default="logsumexp", choices=["logsumexp", "max"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = Model(args.backbone, args.width, args.heads, args.hidden, args.dim).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    seconds = warmup_seconds = 0.0
    for step in range(args.warmup + args.steps):
        view_a = torch.rand(args.batch_size, 3, 32, 32, device=device)
        view_b = torch.rand(args.batch_size, 3, 32, 32, device=device)
        sync()
        started = time.perf_counter()
        za, zb = model.project(view_a), model.project(view_b)
        if args.method == "amcl-simclr":
            loss = amcl_simclr(model, za, zb, 1e-4, args.reduction)
        else:
            loss = sum(nt_xent(a, b, 0.5) for a, b in zip(za, zb))
        value = loss.item()
        if not math.isfinite(value):
            raise SystemExit(f"non-finite loss at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        if step >= args.warmup:
            seconds += time.perf_counter() - started
        else:
            warmup_seconds += time.perf_counter() - started
    result = {
        "method": args.method,
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "heads": args.heads,
        "images_per_s": args.steps * args.batch_size / seconds,
        "seconds_per_step": seconds / args.steps,
        "warmup_seconds": warmup_seconds,
        "peak_memory_bytes": torch.cuda.max_memory_reserved()
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "device": f"{torch.cuda.get_device_name()} (PyTorch {torch.__version__})"
        if cuda
        else f"cpu (PyTorch {torch.__version__}, {torch.get_num_threads()} threads)",
        "steps": args.steps,
        # Counted as burn's num_params does: parameters and batch-norm running statistics.
        "params": sum(p.numel() for p in model.parameters())
        + sum(b.numel() for n, b in model.named_buffers() if "running" in n),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.method} / {args.backbone} / batch {args.batch_size} on {result['device']}: "
            f"{result['images_per_s']:.1f} images/s ({result['seconds_per_step']:.3f} s/step)"
        )


if __name__ == "__main__":
    main()
