"""Data-parallel scaling: samples per second of 1 and of N processes (one thread each) training the
image VAE (784-400-20, batch 128) and a small sketch model (batch 100) with the trainer's own step
(``pvae.svi.SVI`` under DDP, the global batch sliced per rank), and the scaling efficiency
(speed-up / N). Runs alternate 1 and N processes, ``--repeats`` times, and report medians:

    python scripts/bench_ddp.py                    # N = 2, as on a 2-core CPU
    python scripts/bench_ddp.py --nproc 4 --device cuda   # on a machine with 4 GPUs
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

WORKER = "PVAE_BENCH_WORKER"


def worker(model_name: str, steps: int, device: str) -> None:
    """One rank: ``steps`` timed steps (after 5 warm-up steps); rank 0 prints samples per second."""
    from guides import GUIDES
    from models import MODELS
    from pvae import distributed
    from pvae.objectives import make_objective
    from pvae.svi import SVI, make_optimizer

    ranks, device = distributed.start(device)
    torch.manual_seed(0)
    if model_name == "image":
        batch = 128
        model, guide = MODELS["gaussian"](784, 20, hidden=[400]), GUIDES["mlp"](784, 20, hidden=[400])
        x = torch.bernoulli(torch.full((batch, 784), 0.3))
        objective = make_objective("elbo")
    else:
        batch, rows = 100, 64
        model = MODELS["sketch"](max_len=rows, latent_dim=32, dec_hidden=128, mixtures=10)
        guide = GUIDES["rnn"](latent_dim=32, enc_hidden=64)
        x = torch.zeros(batch, rows, 5)
        x[:, :40, :2] = torch.randn(batch, 40, 2)
        x[:, :40, 2], x[:, 40:, 4] = 1, 1
        objective = make_objective("meanfield")
    model, guide, x = model.to(device), guide.to(device), x.to(device)
    svi = SVI(model, guide, objective, make_optimizer([*model.parameters(), *guide.parameters()], 1e-3), ranks=ranks)
    mine = ranks.shard(x)
    for i in range(5 + steps):
        if i == 5:
            if torch.cuda.is_available() and device.startswith("cuda"):
                torch.cuda.synchronize()
            ranks.sum(0.0)  # start the clock together
            started = time.perf_counter()
        svi.step(mine, total=batch)
    if torch.cuda.is_available() and device.startswith("cuda"):
        torch.cuda.synchronize()
    ranks.sum(0.0)
    if ranks.main:
        print(f"samples/s {batch * steps / (time.perf_counter() - started):.1f}", flush=True)
    distributed.stop()


def measure(model_name: str, nproc: int, steps: int, device: str) -> float:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    command += [__file__, model_name, str(steps), device]
    env = {**os.environ, WORKER: "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return float(next(line for line in out.splitlines() if line.startswith("samples/s")).split()[1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=200, help="timed steps of the image VAE (the sketch model: 1/10)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    print(f"| model | samples/s, 1 process | samples/s, {args.nproc} processes | speed-up | efficiency |")
    print("|---|---|---|---|---|")
    for name, steps in (("image", args.steps), ("sketch", max(1, args.steps // 10))):
        rates = {1: [], args.nproc: []}
        for _ in range(args.repeats):
            for n in rates:
                rates[n].append(measure(name, n, steps, args.device))
        one, many = statistics.median(rates[1]), statistics.median(rates[args.nproc])
        print(f"| {name} | {one:.0f} | {many:.0f} | {many / one:.2f} | {many / one / args.nproc:.2f} |")


if __name__ == "__main__":
    if os.environ.get(WORKER):
        worker(sys.argv[1], int(sys.argv[2]), sys.argv[3])
    else:
        main()
