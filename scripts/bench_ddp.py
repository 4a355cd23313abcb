"""Data-parallel scaling: samples per second of 1 and of N processes (one thread each) training the
image VAE (784-400-20) and a small sketch model with the trainer's own step (``pvae.svi.SVI`` under
DDP, the global batch sliced per rank), at each global batch of ``--batches``, and the scaling
efficiency (speed-up / N); then, per model, the smallest global batch at which N processes are at
least ``--target`` times as fast as one. Runs alternate 1 and N processes, ``--repeats`` times, and
report medians; each run takes about the same number of samples (fewer steps at larger batches).
Then the peak resident memory of each rank reading its shard of generated QuickDraw files of 5k
and 500k drawings (``quickdraw:`` is read lazily: memory should not grow with the file):

    python scripts/bench_ddp.py                    # N = 2, as on a 2-core CPU
    python scripts/bench_ddp.py --batches 128 --no-memory
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


def memory_worker(spec: str) -> None:
    """One rank: load a ``quickdraw:`` dataset and read its slice of 20 batches of 100; print the
    process's peak resident memory."""
    import resource

    from pvae import distributed
    from pvae.kinds.base import load_dataset

    ranks, _ = distributed.start("cpu")
    train = load_dataset(spec).split("train")
    for _, _ in zip(range(20), train.batches(100, torch.Generator().manual_seed(0), part=(ranks.rank, ranks.world))):
        pass
    peaks = ranks.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if ranks.main:
        print("peaks " + " ".join(f"{p:.0f}" for p in peaks), flush=True)
    distributed.stop()


def generate_drawings(path: str, n: int) -> None:
    """``n`` random simplified QuickDraw drawings (1-4 strokes of 2-20 points) in one file."""
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        for _ in range(n):
            strokes = [rng.integers(0, 256, (2, k)).tolist() for k in rng.integers(2, 21, rng.integers(1, 5))]
            f.write(json.dumps({"word": "scribble", "drawing": strokes}) + "\n")


def memory(nproc: int, sizes: tuple[int, ...] = (5_000, 500_000)) -> None:
    import tempfile

    print(f"\n| drawings | file MB | peak resident MB of each of {nproc} ranks |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = os.path.join(tmp, f"draw{n}.ndjson")
            generate_drawings(path, n)
            subprocess.run(
                [sys.executable, "-c", f"from pvae.kinds.base import load_dataset; load_dataset('quickdraw:{path}')"]
            )
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
            env = {**os.environ, WORKER: "memory", "OMP_NUM_THREADS": "1"}
            out = subprocess.run([*command, __file__, f"quickdraw:{path}"], capture_output=True, text=True, env=env)
            peaks = next(line for line in out.stdout.splitlines() if line.startswith("peaks")).split()[1:]
            print(f"| {n} | {os.path.getsize(path) / 2**20:.0f} | {', '.join(peaks)} |")


def worker(model_name: str, steps: int, device: str, batch: int) -> None:
    """One rank: ``steps`` timed steps of global ``batch`` (after 5 warm-up steps); rank 0 prints
    samples per second."""
    from guides import GUIDES
    from models import MODELS
    from pvae import distributed
    from pvae.objectives import make_objective
    from pvae.svi import SVI, make_optimizer

    ranks, device = distributed.start(device)
    torch.manual_seed(0)
    if model_name == "image":
        model, guide = MODELS["gaussian"](784, 20, hidden=[400]), GUIDES["mlp"](784, 20, hidden=[400])
        x = torch.bernoulli(torch.full((batch, 784), 0.3))
        objective = make_objective("elbo")
    else:
        rows = 64
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


def measure(model_name: str, nproc: int, steps: int, device: str, batch: int) -> float:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    command += [__file__, model_name, str(steps), device, str(batch)]
    env = {**os.environ, WORKER: "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return float(next(line for line in out.splitlines() if line.startswith("samples/s")).split()[1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--steps", type=int, default=200, help="timed steps of the image VAE at batch 128 (the sketch model: 1/10)"
    )
    p.add_argument("--batches", type=int, nargs="+", default=[128, 512, 2048], help="global batch sizes")
    p.add_argument("--models", nargs="+", default=["image", "sketch"], choices=["image", "sketch"])
    p.add_argument("--target", type=float, default=1.6, help="the speed-up whose crossover batch is reported")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-memory", action="store_true", help="skip the memory table")
    args = p.parse_args(argv)
    print(
        f"| model | global batch | samples/s, 1 process | samples/s, {args.nproc} processes | speed-up | efficiency |"
    )
    print("|---|---|---|---|---|---|")
    crossover = {}
    for name, steps in (("image", args.steps), ("sketch", max(1, args.steps // 10))):
        if name not in args.models:
            continue
        for batch in args.batches:
            scaled = max(5, steps * 128 // batch)  # about the same samples per run at every batch
            rates = {1: [], args.nproc: []}
            for _ in range(args.repeats):
                for n in rates:
                    rates[n].append(measure(name, n, scaled, args.device, batch))
            one, many = statistics.median(rates[1]), statistics.median(rates[args.nproc])
            print(
                f"| {name} | {batch} | {one:.0f} | {many:.0f} | {many / one:.2f} | {many / one / args.nproc:.2f} |",
                flush=True,
            )
            if many / one >= args.target:
                crossover.setdefault(name, batch)
    for name in args.models:
        found = crossover.get(name)
        print(
            f"{name}: {args.nproc} processes are at least {args.target}x as fast as one "
            + (f"from global batch {found}" if found else f"at none of {', '.join(map(str, args.batches))}")
        )
    if not args.no_memory:
        memory(args.nproc)


if __name__ == "__main__":
    if os.environ.get(WORKER) == "memory":
        memory_worker(sys.argv[1])
    elif os.environ.get(WORKER):
        worker(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        main()
