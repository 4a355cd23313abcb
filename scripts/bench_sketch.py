"""Benchmark one training step of the pvae sketch model against the same step in plain PyTorch.

The pvae step is the code path of ``pvae train --model sketch``: ``SketchVAE`` and ``RNNGuide`` from
the registry, the sketch model's default objective (``meanfield``: analytic KL) with sketch-rnn's KL
weight and floor through ``KLControlled``, ``pvae.svi.SVI`` with gradient clipping at 1.0 and the
fused Adam. The plain step, written below, computes the same network (weights copied from pvae's),
the same loss (masked mixture-density reconstruction, weighted and floored analytic KL) and the
same update, by hand. Both run interleaved in this process; medians and their ratio are printed, at
the paper's size and at a small one, with steps per second to plan training.

    python scripts/bench_sketch.py [--steps 6] [--small-steps 30]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyro
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from pvae import runs
from pvae.memory import keep_freed_memory
from pvae.objectives import KLControl, make_objective
from pvae.svi import SVI, make_optimizer

FLOOR, WEIGHT, CLIP, LR = 0.2, 0.5, 1.0, 1e-3


def batch(size: int, rows: int, data: Path | None) -> torch.Tensor:
    """A batch of sketches from a sketch-rnn ``.npz`` (``data``, e.g. aaron_sheep.npz) or random
    strokes, ``(size, rows, 5)``."""
    from pvae.kinds.strokes.data import prepare, read_stroke_file, to_stroke5

    if data is not None:
        sketches = [s[: rows - 1].copy() for s in prepare(read_stroke_file(data), data.stem).split("train").sketches]
        sketches = sketches[:size]
        for s in sketches:  # cut to fit the small size
            s[-1, 2] = 1
        return torch.from_numpy(np.stack([to_stroke5(s, rows) for s in sketches]))
    rng = np.random.default_rng(0)
    sketches = [
        np.column_stack([rng.normal(size=(n, 2)), rng.random(n) < 0.1]) for n in rng.integers(20, rows - 1, size)
    ]
    for s in sketches:
        s[-1, 2] = 1
    return torch.from_numpy(np.stack([to_stroke5(s, rows) for s in sketches]))


class PlainSketchRNN(nn.Module):
    """sketch-rnn by hand: BiLSTM encoder, LSTM decoder with [S_{t-1}, z] input, MDN output."""

    def __init__(self, model: nn.Module, guide: nn.Module) -> None:
        super().__init__()
        self.encoder = nn.LSTM(5, guide.enc_hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * guide.enc_hidden, 2 * guide.latent_dim)
        self.init = nn.Linear(model.latent_dim, 2 * model.dec_hidden)
        self.decoder = nn.LSTM(5 + model.latent_dim, model.dec_hidden, batch_first=True)
        self.out = nn.Linear(model.dec_hidden, 6 * model.mixtures + 3)
        self.m, self.z_dim = model.mixtures, model.latent_dim
        pairs = [(self.encoder, guide.trunk.rnn), (self.head, guide.head), (self.init, model.init_state)]
        pairs += [(self.decoder, model.rnn), (self.out, model.output)]
        with torch.no_grad():
            for mine, theirs in pairs:
                for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
                    a.copy_(b)

    def loss(self, x: torch.Tensor, kl_weight: float) -> torch.Tensor:
        b, t, _ = x.shape
        lengths = (x[:, :, 4] < 0.5).sum(1)
        packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.encoder(packed)
        mu, presig = self.head(torch.cat([h[0], h[1]], -1)).chunk(2, -1)
        sigma = torch.exp(presig / 2)
        z = mu + sigma * torch.randn_like(mu)
        # KL(N(mu, sigma^2) || N(0, 1)) = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2)
        kl = 0.5 * (mu**2 + sigma**2 - 1 - presig).sum(-1)
        start = torch.tensor([0.0, 0, 1, 0, 0]).expand(b, 1, 5)
        inputs = torch.cat([torch.cat([start, x[:, :-1]], 1), z.unsqueeze(1).expand(-1, t, -1)], -1)
        h0, c0 = torch.tanh(self.init(z)).chunk(2, -1)
        out, _ = self.decoder(inputs, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
        pi, mx, my, sx, sy, rho, pen = self.out(out).split([self.m] * 6 + [3], -1)
        sx, sy, rho = (
            torch.exp(sx).clamp(min=1e-4),
            torch.exp(sy).clamp(min=1e-4),
            torch.tanh(rho).clamp(-1 + 1e-5, 1 - 1e-5),
        )
        u, v = (x[..., :1] - mx) / sx, (x[..., 1:2] - my) / sy
        zz = u**2 + v**2 - 2 * rho * u * v
        log_n = -math.log(2 * math.pi) - sx.log() - sy.log() - 0.5 * torch.log(1 - rho**2) - zz / (2 * (1 - rho**2))
        offsets = torch.logsumexp(F.log_softmax(pi, -1) + log_n, -1)  # (B, T)
        real = torch.arange(t) < lengths.unsqueeze(1)
        pen_ll = (x[..., 2:] * F.log_softmax(pen, -1)).sum(-1)
        recon = (offsets * real).sum(1) + pen_ll.sum(1)
        total_kl = kl.sum()
        floor = torch.relu(b * self.z_dim * FLOOR - total_kl)
        return (-recon.sum() + kl_weight * (total_kl + floor)) / b


def bench(size: dict, x: torch.Tensor, steps: int) -> tuple[float, float]:
    pyro.clear_param_store()
    torch.manual_seed(0)
    kwargs = dict(max_len=x.shape[1], **size)
    model = runs.build("model", **runs.make_spec("model", "sketch", kwargs))
    guide = runs.build("guide", **runs.make_spec("guide", "rnn", kwargs))
    weight = WEIGHT * x.shape[1] / size["latent_dim"]  # sketch-rnn's units: w T / Z on the KL in nats
    objective = make_objective("meanfield", 1, kl=KLControl(weight=weight, floor=FLOOR))
    svi = SVI(model, guide, objective, make_optimizer([*model.parameters(), *guide.parameters()], LR), clip_value=CLIP)
    plain = PlainSketchRNN(model, guide)
    opt = make_optimizer(list(plain.parameters()), LR)

    def plain_step():
        loss = plain.loss(x, weight)
        loss.backward()
        torch.nn.utils.clip_grad_value_(plain.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    pyro.set_rng_seed(1)
    a = svi.step(x)
    pyro.set_rng_seed(1)
    b = plain_step()
    assert abs(a - b) < 1e-3 * abs(b), (a, b)  # the same loss, from the same weights and draw
    times = {"pvae": [], "plain": []}
    for _ in range(steps):
        for name, fn in (("pvae", lambda: svi.step(x)), ("plain", plain_step)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["pvae"]), statistics.median(times["plain"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps of each at the paper's size")
    p.add_argument("--data", type=Path, help="a sketch-rnn .npz such as aaron_sheep.npz (default: random strokes)")
    p.add_argument("--small-steps", type=int, default=30, help="timed steps of each at the small size")
    args = p.parse_args(argv)
    keep_freed_memory()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 100; medians of interleaved steps")
    configs = [
        ("paper", dict(latent_dim=128, enc_hidden=256, dec_hidden=512, mixtures=20), 250, args.steps),
        ("small", dict(latent_dim=32, enc_hidden=64, dec_hidden=128, mixtures=10), 64, args.small_steps),
    ]
    print(f"{'size':<6} {'T':>4} {'pvae s/step':>12} {'plain s/step':>13} {'ratio':>6} {'pvae steps/s':>13}")
    for name, size, rows, steps in configs:
        x = batch(100, rows + 1, args.data)
        pvae_s, plain_s = bench(size, x, steps)
        print(
            f"{name:<6} {rows + 1:>4} {pvae_s:>12.3f} {plain_s:>13.3f} {pvae_s / plain_s:>6.3f} {1 / pvae_s:>13.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
