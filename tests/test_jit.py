"""``--jit`` (``pvae.svi.TracedLoss``): a traced run is the eager run, values that change reach the
trace, values a trace would freeze are caught or refused. The combination matrix checks every
registered model x guide x objective (``test_matrix.py``)."""

from __future__ import annotations

import csv

import pyro
import pytest
import torch
from pyro import poutine

from guides.mlp import MLPGuide
from models import MODELS
from models.gaussian_vae import GaussianVAE
from pvae.contracts import Model
from pvae.distributed import Ranks
from pvae.errors import UserError
from pvae.objectives import make_objective
from pvae.svi import SVI, NonFinite, make_optimizer
from pvae.train import TrainConfig, Trainer


def _rows(run) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _tiny_svi(model_cls: type[GaussianVAE] = GaussianVAE, **kwargs) -> tuple[SVI, torch.Tensor]:
    """An ``SVI`` with ``jit=True`` (unless ``kwargs`` say otherwise) on a 16-pixel VAE, and a batch of 5."""
    torch.manual_seed(0)
    model, guide = model_cls(data_dim=16, latent_dim=2, hidden=[8]), MLPGuide(16, 2, hidden=[8])
    optimizer = make_optimizer([*model.parameters(), *guide.parameters()], 1e-3)
    svi = SVI(model, guide, make_objective("elbo"), optimizer, **{"jit": True, **kwargs})
    return svi, (torch.rand(5, 16) < 0.5).float()


def test_a_traced_run_is_the_eager_run_with_an_annealed_kl_weight_and_a_floor(tmp_path):
    """Annealing changes w every step: were w frozen in the trace, the losses would part. 400
    training images in batches of 60 make two batch shapes (60 and 40), so two traces."""
    base = dict(
        data="digits:400", epochs=2, batch_size=60, latent_dim=4, hidden=[32], seed=3,
        kl_weight_start=0.05, kl_anneal_rate=0.8, kl_floor=0.05,
    )  # fmt: skip
    runs = {}
    for jit in (False, True):
        runs[jit] = Trainer(TrainConfig(**base, jit=jit), tmp_path / str(jit), progress=False)
        runs[jit].train()
    assert len(runs[True].svi.traced.traces) == 2
    eager, traced = _rows(tmp_path / "False"), _rows(tmp_path / "True")
    for a, b in zip(eager, traced, strict=True):
        for field in ("train_loss", "test_elbo"):
            assert float(b[field]) == pytest.approx(float(a[field]), rel=1e-5), field
    for module in ("model", "guide"):
        for p, q in zip(getattr(runs[False], module).parameters(), getattr(runs[True], module).parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)


class _PythonNoise(GaussianVAE):
    """Declares itself traceable, yet draws a number in Python each call: a trace would keep one."""

    traceable = True

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None):
        return self.decoder(z * (1.0 + float(torch.rand(()))))


def test_a_value_that_python_computes_anew_each_step_is_caught_when_the_trace_is_recorded():
    svi, x = _tiny_svi(_PythonNoise)
    svi.step(x)  # the first step is eager (validated)
    with pytest.raises(UserError, match=r"^--jit: the traced loss differs from the eager one"):
        svi.step(x)


def test_jit_is_refused_in_one_line_where_a_trace_could_freeze_a_value(tmp_path):
    base = dict(data="digits:100", steps=1, batch_size=10, latent_dim=2, hidden=[8], jit=True)
    refusals = {
        "iwae-dreg": "--jit: --objective iwae-dreg is not traceable",
        "aae": "--jit: --objective aae is not traceable",
    }
    for objective, message in refusals.items():
        with pytest.raises(UserError, match=f"^{message}"):
            Trainer(TrainConfig(**base, objective=objective), tmp_path / objective, progress=False)
    with pytest.raises(ValueError, match="one process"):
        _tiny_svi(ranks=Ranks(rank=0, world=2))


def test_a_traceable_model_has_no_schedule_of_its_own():
    """``set_progress`` changes a model between steps in Python: a traceable model must not have one."""
    for name, cls in MODELS.items():
        if cls.traceable:
            assert cls.set_progress is Model.set_progress, name


def test_a_nan_batch_where_a_trace_would_be_recorded_raises_as_without_jit_and_records_nothing():
    svi, x = _tiny_svi()
    svi.step(x)
    poisoned = x.clone()
    poisoned[0, 0] = float("nan")
    with pytest.raises(NonFinite, match="non-finite loss"):
        svi.step(poisoned)
    assert not svi.traced.traces
    svi.step(x)
    assert len(svi.traced.traces) == 1


def test_inside_a_pyro_handler_the_eager_program_runs():
    """A trace would keep the handler it was recorded under (or miss one added later)."""
    svi, x = _tiny_svi()
    svi.step(x)
    svi.step(x)  # recorded, outside any handler
    values = {}
    for name, loss in (("eager", svi.module), ("traced", svi.traced)):
        torch.manual_seed(1)
        with pyro.validation_enabled(False), poutine.scale(scale=0.5):
            values[name] = loss(x).item()
    torch.manual_seed(1)
    with pyro.validation_enabled(False):
        unscaled = svi.traced(x).item()
    assert values["traced"] == pytest.approx(values["eager"], rel=1e-6)
    assert values["traced"] == pytest.approx(unscaled / 2, rel=1e-6)
