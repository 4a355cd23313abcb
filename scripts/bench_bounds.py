"""Benchmark ``pvae bounds``: L_5000 on 1000 test images with the IWAE paper's 1-layer network.

Prints images per second, the achieved FLOP rate of the decoder's matrix products (the work that
grows with k), with the products over samples in float32 and in bfloat16 (``pvae bounds --matmul-dtype``),
the rate of plain float32 ``torch.matmul`` on the same layer shapes measured in this process
(the best over the rows of one chunk of ``pvae.bounds`` and ``REFERENCE_ROWS``, so a chunk size the
matrix product is slow at lowers the ratio), their ratio, and the process's peak resident memory.

    python scripts/bench_bounds.py [--images 1000] [--k 5000] [--batch-size 100] [--matmul-dtype both]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

from pvae import runs
from pvae.bounds import POINTS_PER_CHUNK, estimate_bounds
from pvae.memory import keep_freed_memory

LATENT, HIDDEN = 50, [200, 200]
REFERENCE_ROWS = (2**10, 2**12, 2**14, 2**15)  # row counts torch.matmul is also timed at


def test_images(n: int, data: Path | None) -> tuple[torch.Tensor, str]:
    """The first n test images of binarized MNIST (``data``), or binarised built-in digits."""
    if data is not None:
        from pvae.kinds.image.mnist import load_binarized_mnist

        return load_binarized_mnist(data).split("test").images[:n], f"binarized MNIST test ({data.name})"
    from pvae.kinds.image.data import binarize
    from pvae.kinds.image.digits import load_digits

    return binarize(load_digits(max(n, 100)).split("test").images[:n], seed=0), "built-in digits, binarised"


def matmul_rate(rows: int) -> float:
    """FLOP/s of torch.matmul on the decoder's layer shapes (rows x 50 -> 200 -> 200 -> 784), over
    about 2^17 rows in all (at least 5 repeats)."""
    repeats = max(5, 2**17 // rows)
    sizes = [LATENT, *HIDDEN, 784]
    inputs = [torch.randn(rows, a) for a in sizes[:-1]]
    weights = [torch.randn(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    flops = sum(2 * rows * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    for x, w in zip(inputs, weights):
        torch.matmul(x, w)
    start = time.perf_counter()
    for _ in range(repeats):
        for x, w in zip(inputs, weights):
            torch.matmul(x, w)
    return flops * repeats / (time.perf_counter() - start)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--data", type=Path, help="binarized_mnist.npz (default: built-in digits, binarised)")
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument(
        "--matmul-dtype", choices=("float32", "bfloat16", "both"), default="both", help="as pvae bounds' (default both)"
    )
    args = p.parse_args(argv)
    keep_freed_memory()  # as the pvae command does
    print(f"command: python {' '.join(sys.argv)}")
    torch.manual_seed(0)
    kwargs = dict(data_dim=784, latent_dim=LATENT, hidden=HIDDEN, activation="tanh", scale="exp")
    model = runs.build("model", **runs.make_spec("model", "gaussian", kwargs)).eval()
    guide = runs.build("guide", **runs.make_spec("guide", "mlp", kwargs)).eval()
    images, source = test_images(args.images, args.data)
    model.init_output_bias(images.mean(0))

    rows = (POINTS_PER_CHUNK // args.batch_size) * args.batch_size  # particles x datapoints of one chunk
    all_rows = sorted({rows, *REFERENCE_ROWS})
    rates = {r: matmul_rate(r) for r in all_rows}
    timings = {}
    chosen = {"float32": (None,), "bfloat16": (torch.bfloat16,), "both": (None, torch.bfloat16)}[args.matmul_dtype]
    for dtype in chosen:
        start = time.perf_counter()
        bounds = estimate_bounds(model, guide, images, ks=(1, args.k), batch_size=args.batch_size, matmul_dtype=dtype)
        timings[str(dtype or torch.float32).removeprefix("torch.")] = (time.perf_counter() - start, bounds)
    rates = {r: max(rate, matmul_rate(r)) for r, rate in rates.items()}  # again after, in case the machine was busy
    reference = max(rates.values())
    sizes = [LATENT, *HIDDEN, 784]
    flops = len(images) * args.k * sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    print(f"data: {source}; network 784-200-200-50 tanh (untrained); {len(images)} images x {args.k} samples")
    print(
        f"reference: float32 torch.matmul on the decoder's shapes {reference / 1e9:.1f} GFLOP/s "
        f"(best of {', '.join(f'{r} rows {rates[r] / 1e9:.1f}' for r in all_rows)})"
    )
    for name, (seconds, bounds) in timings.items():
        achieved = flops / seconds
        print(
            f"products in {name}: {seconds:.1f} s, {len(images) / seconds:.1f} images/s, decoder FLOP rate "
            f"{achieved / 1e9:.1f} GFLOP/s, ratio to the reference {achieved / reference:.2f}; "
            f"L_1 = {bounds.mean(1):.3f}, L_{args.k} = {bounds.mean(args.k):.3f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB on Linux
    print(f"peak resident memory {peak:.2f} GiB")


if __name__ == "__main__":
    main()
