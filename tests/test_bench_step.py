"""scripts/bench_step.py: its plain-Pyro baseline tells Pyro the plate nesting, so nothing is logged
in the middle of the script's table."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pyro
import pytest
import torch

from pvae.objectives import make_objective

pytestmark = pytest.mark.usefixtures("one_thread")


def _bench_step():
    path = Path(__file__).resolve().parent.parent / "scripts" / "bench_step.py"
    spec = importlib.util.spec_from_file_location("bench_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("objective, k", [("elbo", 1), ("iwae", 2)])
def test_the_pyro_baseline_logs_nothing(objective, k, caplog):
    bench = _bench_step()
    pyro.clear_param_store()
    model, guide = bench.fresh_pair(0)
    svi = pyro.infer.SVI(
        model.model, guide.guide, pyro.optim.Adam({"lr": bench.LR}), loss=bench.pyro_loss(objective, k)
    )
    with caplog.at_level(logging.DEBUG):
        loss = svi.step(torch.bernoulli(torch.full((4, bench.D), 0.5)))
    assert torch.isfinite(torch.tensor(loss))
    assert [r.getMessage() for r in caplog.records] == []


@pytest.mark.parametrize("objective, k", [("elbo", 1), ("meanfield", 1), ("iwae", 3)])
def test_the_plain_baseline_computes_pvaes_loss(objective, k):
    """The hand-written step the benchmark compares against is the same loss as pvae's objective
    (the same weights and, from one seed, the same draws): its ratios compare equal work."""
    bench = _bench_step()
    model, guide = bench.fresh_pair(0)
    plain = bench.PlainVAE(model, guide)
    x = torch.bernoulli(torch.full((5, bench.D), 0.3), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    ours = make_objective(objective, k).differentiable_loss(model.model, guide.guide, x) / len(x)
    torch.manual_seed(2)
    torch.testing.assert_close(plain.loss(x, k, objective), ours, rtol=1e-5, atol=1e-4)
