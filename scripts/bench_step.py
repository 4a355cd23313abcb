"""Benchmark one pvae training step against the same step written by hand in plain PyTorch.

The pvae step is the exact code path of ``pvae train``: model and guide built from the registry,
the objective from ``pvae.objectives.make_objective`` and ``pvae.svi.SVI`` with its fused Adam.
The plain step computes the same network (weights copied from pvae's, so the arithmetic is the
same) and the same loss by hand: the ELBO with one sample, or the IWAE bound with K samples,
logsumexp per datapoint. Baselines, all timed interleaved in this process (the machine is noisy,
so only ratios within one run mean anything):

- plain, ``torch.optim.Adam(params, lr)``: what a hand-written training loop usually is;
- plain, the same fused Adam pvae uses: isolates the cost of Pyro's machinery alone;
- pvae's step with ``jit=True`` (``pvae train --jit``): the loss traced once per batch shape;
- pvae's step inside a Pyro handler that does nothing, so that the objectives trace the model and
  guide with Pyro's effect handlers instead of writing the traces down (``contract_traces``);
- ``pyro.infer.SVI`` with ``pyro.optim.Adam`` and Pyro's own ``Trace_ELBO`` / ``RenyiELBO(alpha=0)``,
  as a Pyro user runs it: validation on (Pyro's default). pvae validates its first step only.

With ``--layers`` it prints instead where the time of pvae's elbo step goes: the step built up from
plain PyTorch (with the fused Adam and pvae's gradient check) to ``SVI.step``, one layer at a time,
then ``SVI.step`` with ``jit=True``.

    python scripts/bench_step.py [--steps 300] [--batch-sizes 128 20] [--layers]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import pyro
import torch
import torch.nn.functional as F
from pyro.poutine.messenger import Messenger
from torch import nn

from pvae import runs
from pvae.kinds.image.data import binarize
from pvae.kinds.image.digits import load_digits
from pvae.memory import keep_freed_memory
from pvae.objectives import contract_traces, make_objective
from pvae.svi import SVI, all_finite, make_optimizer

D, H, Z, LR = 784, 400, 50, 1e-3
Step = Callable[[torch.Tensor], float]  # one training step on a batch


class PlainVAE(nn.Module):
    """The 784-400-50 VAE by hand: one hidden ReLU layer each way, softplus encoder scale."""

    def __init__(self, model: nn.Module, guide: nn.Module) -> None:
        super().__init__()
        self.enc, self.head = nn.Linear(D, H), nn.Linear(H, 2 * Z)
        self.dec, self.out = nn.Linear(Z, H), nn.Linear(H, D)
        pairs = [
            (self.enc, guide.trunk[0]),
            (self.head, guide.head),
            (self.dec, model.decoder.net[0]),
            (self.out, model.decoder.net[2]),
        ]
        with torch.no_grad():
            for mine, theirs in pairs:
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)

    def loss(self, x: torch.Tensor, k: int, objective: str = "elbo") -> torch.Tensor:
        """The negative mean bound of ``objective``: the ELBO with one draw (``elbo``), with the KL
        to N(0, I) in closed form (``meanfield``), or the IWAE bound of K draws (``iwae``)."""
        loc, raw = self.head(F.relu(self.enc(x))).chunk(2, dim=-1)
        scale = F.softplus(raw) + 1e-5
        eps = torch.randn((k,) + loc.shape)
        z = loc + scale * eps  # (K, B, Z)
        logits = self.out(F.relu(self.dec(z)))
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        if objective == "meanfield":  # KL(N(mu, s^2) || N(0, 1)) = sum (mu^2 + s^2 - 1) / 2 - log s
            kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1)
            return -(log_px.mean(0) - kl).mean()
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        log_pz = (-0.5 * z**2 - half_log_2pi).sum(-1)
        log_qz = (-0.5 * eps**2 - scale.log() - half_log_2pi).sum(-1)  # N(z; loc, scale) at z = loc + scale*eps
        log_w = log_px + log_pz - log_qz  # (K, B)
        bound = torch.logsumexp(log_w, 0) - math.log(k) if objective == "iwae" else log_w.mean(0)
        return -bound.mean()


def fresh_pair(seed: int):
    torch.manual_seed(seed)
    kwargs = dict(data_dim=D, latent_dim=Z, hidden=[H], activation="relu", likelihood="bernoulli")
    return tuple(
        runs.build(kind, **runs.make_spec(kind, name, kwargs))
        for kind, name in (("model", "gaussian"), ("guide", "mlp"))
    )


def steppers(objective: str, k: int) -> dict[str, Step]:
    """name -> one training step on a batch, each with its own copy of the same initial weights."""
    out = {}
    model, guide = fresh_pair(0)
    svi = SVI(
        model, guide, make_objective(objective, k), make_optimizer([*model.parameters(), *guide.parameters()], LR)
    )
    out["pvae"] = svi.step
    model, guide = fresh_pair(0)
    params = [*model.parameters(), *guide.parameters()]
    out["pvae_jit"] = SVI(model, guide, make_objective(objective, k), make_optimizer(params, LR), jit=True).step
    model, guide = fresh_pair(0)
    traced = SVI(
        model, guide, make_objective(objective, k), make_optimizer([*model.parameters(), *guide.parameters()], LR)
    )

    def traced_step(x, traced=traced):
        with Messenger():  # a handler that does nothing: the objectives trace the programs as Pyro does
            return traced.step(x)

    out["pvae_traced"] = traced_step

    for name, fused in (("plain", False), ("plain_fused", True)):
        plain = PlainVAE(*fresh_pair(0))
        opt = (
            torch.optim.Adam(plain.parameters(), lr=LR, fused=True)
            if fused
            else torch.optim.Adam(plain.parameters(), lr=LR)
        )

        def step(x, plain=plain, opt=opt):
            loss = plain.loss(x, k, objective)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        out[name] = step

    pmodel, pguide = fresh_pair(0)
    pyro_svi = pyro.infer.SVI(pmodel.model, pguide.guide, pyro.optim.Adam({"lr": LR}), loss=pyro_loss(objective, k))
    out["pyro_svi"] = pyro_svi.step
    return out


def pyro_loss(objective: str, k: int) -> pyro.infer.ELBO:
    """Pyro's own loss for ``objective`` with K vectorised particles, told the one data plate
    (``max_plate_nesting=1``), so Pyro does not guess it (and log that it did) at the first step."""
    if objective == "iwae":
        return pyro.infer.RenyiELBO(alpha=0, num_particles=k, max_plate_nesting=1, vectorize_particles=True)
    if objective == "meanfield":
        return pyro.infer.TraceMeanField_ELBO(num_particles=k, max_plate_nesting=1, vectorize_particles=True)
    return pyro.infer.Trace_ELBO(num_particles=k, max_plate_nesting=1, vectorize_particles=True)


def interleaved(fns: dict[str, Step], data: torch.Tensor, batch: int, steps: int, warmup: int) -> dict[str, float]:
    """name -> median ms of ``steps`` steps (after ``warmup``), the steppers taking turns on each batch."""
    times = {name: [] for name in fns}
    n = len(data) // batch
    for i in range(warmup + steps):
        x = data[(i % n) * batch : (i % n + 1) * batch]
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(x)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def bench(objective: str, k: int, batch: int, data: torch.Tensor, steps: int, warmup: int) -> dict[str, float]:
    pyro.clear_param_store()
    return interleaved(steppers(objective, k), data, batch, steps, warmup)


def _finish(loss: torch.Tensor, opt: torch.optim.Optimizer) -> float:
    """Backward, pvae's check that every gradient is finite (``pvae.svi.all_finite``), the fused Adam step."""
    loss.backward()
    if not all_finite([p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]):
        raise FloatingPointError("a non-finite gradient")
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def layer_steppers() -> dict[str, Step]:
    """The elbo step built up from plain PyTorch to ``SVI.step`` one layer at a time, each with the
    fused Adam and pvae's gradient check and its own copy of the same initial weights, so that the
    differences are the layers' costs."""
    plain = PlainVAE(*fresh_pair(0))
    out = {
        "plain + check": partial(
            lambda x, m, opt: _finish(m.loss(x, 1), opt),
            m=plain,
            opt=torch.optim.Adam(plain.parameters(), lr=LR, fused=True),
        )
    }

    def fresh_svi(jit: bool = False) -> SVI:
        model, guide = fresh_pair(0)
        params = [*model.parameters(), *guide.parameters()]
        return SVI(model, guide, make_objective("elbo", 1), make_optimizer(params, LR), jit=jit)

    def modules(x, svi):  # pvae's networks and distributions, no trace
        model, guide = svi.module.model, svi.module.guide
        q = guide.posterior(x)
        z = q.rsample()
        log_w = model.likelihood(z).log_prob(x) + model.prior(len(x)).log_prob(z) - q.log_prob(z)
        return _finish(-log_w.mean(), svi.optimizer)

    def traces(x, svi):  # the same, through the traces the objectives read
        model, guide = svi.module.model, svi.module.guide
        model_trace, guide_trace = contract_traces(model.model, guide.guide, (x,), {}, None, -1)
        return _finish((guide_trace.log_prob_sum() - model_trace.log_prob_sum()) / len(x), svi.optimizer)

    def objective(x, svi):  # the objective's loss through ``ObjectiveLoss``, the module SVI differentiates
        return _finish(svi.module(x) / len(x), svi.optimizer)

    for name, fn in (("+ modules, distributions", modules), ("+ traces", traces), ("+ objective", objective)):
        out[name] = partial(fn, svi=fresh_svi())
    out["SVI.step"] = fresh_svi().step
    out["SVI.step, jit=True"] = fresh_svi(jit=True).step
    return out


def layers(data: torch.Tensor, steps: int, warmup: int, batches: list[int]) -> None:
    print("elbo, the step built up one layer at a time (median ms, ms over the row above, ratio to the first row)")
    pyro.enable_validation(False)  # as SVI.step after its first step
    for batch in batches:
        medians = interleaved(layer_steppers(), data, batch, steps, warmup)
        first = previous = next(iter(medians.values()))
        for name, ms in medians.items():
            print(f"  batch {batch:>3}  {name:<26} {ms:6.3f} ms  {ms - previous:+.3f}  {ms / first:5.3f}")
            previous = ms


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="timed steps per variant (default 300)")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 20])
    p.add_argument("--layers", action="store_true", help="instead: the elbo step built up one layer at a time")
    args = p.parse_args(argv)
    keep_freed_memory()  # as the pvae command does
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.get_num_threads()} threads; "
        f"784-400-50 MLP VAE, Bernoulli likelihood; median ms of {args.steps} interleaved steps after {args.warmup}"
    )
    data = binarize(load_digits(2560, seed=0).split("train").images, seed=0)
    if args.layers:
        return layers(data, args.steps, args.warmup, args.batch_sizes)
    print(
        f"{'objective':<10} {'batch':>5} {'pvae':>7} | {'plain':>7} {'ratio':>6} | "
        f"{'plain+fused':>11} {'ratio':>6} | {'jit':>7} {'ratio':>6} | {'traced':>7} {'ratio':>6} | "
        f"{'pyro SVI':>8} {'ratio':>6}"
    )
    for batch in args.batch_sizes:
        for objective, k in (("elbo", 1), ("meanfield", 1), ("iwae", 5)):
            t = bench(objective, k, batch, data, args.steps, args.warmup)
            label = objective if k == 1 else f"{objective} K={k}"
            print(
                f"{label:<10} {batch:>5} {t['pvae']:>7.2f} | {t['plain']:>7.2f} {t['pvae'] / t['plain']:>6.2f} | "
                f"{t['plain_fused']:>11.2f} {t['pvae'] / t['plain_fused']:>6.2f} | "
                f"{t['pvae_jit']:>7.2f} {t['pvae_jit'] / t['plain_fused']:>6.2f} | "
                f"{t['pvae_traced']:>7.2f} {t['pvae_traced'] / t['plain_fused']:>6.2f} | "
                f"{t['pyro_svi']:>8.2f} {t['pyro_svi'] / t['plain']:>6.2f}",
                flush=True,
            )
    print(
        "ratio: pvae / plain; jit: pvae with jit=True (pvae train --jit) and traced: pvae through Pyro's "
        "handlers, their ratios to plain+fused; "
        "the last column: pyro SVI / plain (torch.optim.Adam defaults)"
    )


if __name__ == "__main__":
    main()
