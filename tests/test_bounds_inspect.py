"""`pvae bounds` and `pvae inspect` on a tiny trained run: every output, and bad input."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from pvae import runs
from pvae.cli import main
from pvae.posterior import importance_resampled, posterior_predictive
from pvae.svi import iwae_lr_factor
from pvae.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    config = TrainConfig(data="digits:400", epochs=2, batch_size=50, latent_dim=4, hidden=[32], seed=1)
    Trainer(config, out, progress=False).train()
    return out


def test_bounds_writes_table_json_and_figure(run, capsys):
    assert main(["bounds", str(run), "--k", "1", "5", "50", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "NLL estimate -L_50" in out
    folder = run / "bounds" / "split=test,k=1-5-50,limit=all,seed=0"
    result = json.loads((folder / "bounds.json").read_text())
    assert result["split"] == "test" and result["n"] == 80
    assert set(result["bounds"]) == {"1", "5", "50"}
    means = [result["bounds"][k]["mean"] for k in ("1", "5", "50")]
    assert means[0] < means[1] < means[2] and result["nll"] == pytest.approx(-means[2])
    assert (folder / "bounds.png").stat().st_size > 1000

    # L_1 is the ELBO the run logged for its last epoch, on the same fixed binarisation.
    with open(run / "metrics.csv") as f:
        logged = float(list(csv.DictReader(f))[-1]["test_elbo"])
    assert abs(means[0] - logged) < 3 * result["bounds"]["1"]["stderr"]


def test_bounds_limit_writes_beside_other_evaluations(run, capsys):
    assert main(["bounds", str(run), "--k", "1", "5", "--limit", "7", "--no-progress"]) == 0
    assert json.loads((run / "bounds" / "split=test,k=1-5,limit=7,seed=0" / "bounds.json").read_text())["n"] == 7
    assert main(["bounds", str(run), "--k", "1", "5", "--limit", "9", "--no-progress"]) == 0
    assert json.loads((run / "bounds" / "split=test,k=1-5,limit=7,seed=0" / "bounds.json").read_text())["n"] == 7


def test_bounds_with_bfloat16_products_write_their_own_folder(run, capsys):
    assert (
        main(["bounds", str(run), "--k", "1", "5", "--limit", "7", "--matmul-dtype", "bfloat16", "--no-progress"]) == 0
    )
    result = json.loads(
        (run / "bounds" / "split=test,k=1-5,limit=7,seed=0,matmul=bfloat16" / "bounds.json").read_text()
    )
    assert result["matmul_dtype"] == "bfloat16" and result["n"] == 7


def test_inspect_writes_figures_and_numbers_without_touching_training_figures(run, capsys):
    trained = {path.name: path.read_bytes() for path in (run / "figures").iterdir()}
    assert main(["inspect", str(run), "--limit", "60"]) == 0
    assert "units active" in capsys.readouterr().out
    folder = run / "inspect" / "split=test,limit=60,seed=0"
    result = json.loads((folder / "inspect.json").read_text())
    assert result["n"] == 60 and result["latent_dim"] == 4
    assert 0 <= result["active_units"] <= 4 and len(result["kl_per_dim"]) == 4
    assert result["kl_total"] == pytest.approx(sum(result["kl_per_dim"]))
    assert result["active_units"] == sum(v > 0.01 for v in result["posterior_mean_variance"])
    assert result["kl_method"] == "closed form"
    for name in (
        "active_units",
        "latent_scatter",
        "traversals",
        "reconstructions_iw",
        "posterior_predictive",
        "prior_samples",
    ):
        assert (folder / f"{name}.png").stat().st_size > 1000, name
    assert {path.name: path.read_bytes() for path in (run / "figures").iterdir()} == trained


def test_importance_resampling_and_posterior_predictive_shapes(run):
    _, model, guide = runs.load_run(run)
    x = torch.bernoulli(torch.full((3, 784), 0.2))
    assert importance_resampled(model, guide, x, k=10).shape == (3, 4)
    draws = posterior_predictive(model, guide, x, num_samples=2)
    assert draws.shape == (2, 3, 784) and set(draws.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "args, message",
    [
        (["bounds", "NOTARUN"], "not a run folder (no config.json)"),
        (["bounds", "RUN", "--k", "0"], "--k 0: every k must be at least 1"),
        (["bounds", "RUN", "--split", "bogus"], "has no split 'bogus'"),
        (["bounds", "RUN", "--limit", "0"], "--limit 0: must be at least 1"),
        (["inspect", "NOTARUN"], "not a run folder (no config.json)"),
        (["inspect", "RUN", "--split", "valid"], "has no split 'valid'"),
    ],
)
def test_bad_input_is_one_clear_line(run, tmp_path, capsys, args, message):
    args = [str(run) if a == "RUN" else str(tmp_path) if a == "NOTARUN" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_iwae_learning_rate_schedule():
    # stage i lasts 3^(i-1) epochs at 10^(-(i-1)/7): epochs 0 | 1-3 | 4-12 | ... | 1093-3279
    assert [round(iwae_lr_factor(e) ** -7) for e in (0, 1, 3, 4, 12, 13, 1092, 1093, 3279)] == [
        1,
        10,
        10,
        100,
        100,
        1000,
        10**6,
        10**7,
        10**7,
    ]
