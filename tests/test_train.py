"""`pvae train` end to end: the run folder, resume after an interruption, and bad input."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from pvae import runs
from pvae.bounds import elbo_terms
from pvae.cli import main
from pvae.train import Interrupted, TrainConfig, Trainer

TINY = ["--latent-dim", "8", "--hidden", "64", "--no-progress"]


def _metrics(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_train_writes_the_run_folder_and_improves(tmp_path):
    run = tmp_path / "run"
    code = main(["train", "--data", "digits:2000", "--epochs", "4", "--batch-size", "32", "--out", str(run), *TINY])
    assert code == 0
    for name in ("config.json", "checkpoint.pt", "metrics.csv"):
        assert (run / name).is_file()
    for name in ("loss", "reconstructions", "prior_samples", "latent_scatter"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 1000
    rows = _metrics(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4] and int(rows[-1]["step"]) == 4 * 63
    assert float(rows[-1]["test_elbo"]) > float(rows[0]["test_elbo"]) + 5

    # config.json and checkpoint.pt alone rebuild the trained pair: same test ELBO as logged.
    config, model, guide = runs.load_run(run)
    assert config["model"] == {
        "name": "gaussian",
        "kwargs": {
            "data_dim": 784,
            "latent_dim": 8,
            "hidden": [64],
            "activation": "relu",
            "likelihood": "bernoulli",
            "obs_scale": None,
        },
    }
    trainer = Trainer(TrainConfig(**config["train"]), tmp_path / "unused", progress=False)
    terms = elbo_terms(model, guide, trainer.test.images)
    assert terms["elbo"] == pytest.approx(float(rows[-1]["test_elbo"]), abs=1e-3)
    assert terms["elbo"] == pytest.approx(terms["recon"] - terms["kl"]) and terms["kl"] > 0


def _config(**kw):
    base = dict(data="digits:400", epochs=3, batch_size=50, latent_dim=4, hidden=[32], seed=3)
    return TrainConfig(**{**base, **kw})


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    straight = Trainer(_config(), tmp_path / "a", progress=False)
    straight.train()

    stopped = Trainer(_config(), tmp_path / "b", progress=False)
    step, calls = stopped.svi.step, [0]

    def interrupt_at_13(*args):
        calls[0] += 1
        if calls[0] == 13:  # epoch 2, batch 5 of 8
            raise KeyboardInterrupt
        return step(*args)

    stopped.svi.step = interrupt_at_13
    with pytest.raises(Interrupted, match="epoch 2, batch 4/8"):
        stopped.train()
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert {k: state["position"][k] for k in ("epoch", "batch", "step")} == {"epoch": 1, "batch": 4, "step": 12}

    resumed = Trainer(_config(), tmp_path / "b", progress=False)
    resumed.train(resume=True)
    for a, b in ((straight.model, resumed.model), (straight.guide, resumed.guide)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(_metrics(tmp_path / "a")) == drop(_metrics(tmp_path / "b"))


@pytest.mark.parametrize("objective", ["meanfield", "iwae"])
def test_every_objective_trains(tmp_path, objective):
    trainer = Trainer(_config(objective=objective, particles=3, epochs=3), tmp_path / objective, progress=False)
    trainer.train()
    rows = _metrics(tmp_path / objective)
    assert float(rows[-1]["test_elbo"]) > float(rows[0]["test_elbo"])


def test_resume_extends_a_finished_run_and_keeps_its_config(tmp_path, capsys):
    run = str(tmp_path / "run")
    args = ["train", "--data", "digits:300", "--batch-size", "50", "--out", run, *TINY]
    assert main([*args, "--epochs", "1"]) == 0
    assert main(["train", "--resume", "--out", run, "--epochs", "2", "--no-progress"]) == 0
    assert [r["epoch"] for r in _metrics(tmp_path / "run")] == ["1", "2"]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["epochs"] == 2
    capsys.readouterr()
    assert main(["train", "--resume", "--out", run, "--lr", "0.5"]) == 2
    assert "--lr 0.5: differs from the run's 0.001" in capsys.readouterr().err
    assert main([*args, "--epochs", "1"]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data", "mnist:/no/such/dir", "--out", "OUT"], "/no/such/dir: no such directory"),
        (["--objective", "bogus", "--out", "OUT"], "invalid choice: 'bogus'"),
        (["--particles", "0", "--out", "OUT"], "--particles 0: must be at least 1"),
        (["--model", "nope", "--out", "OUT"], "--model nope: unknown"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, flags, message):
    out = tmp_path / "r"
    flags = [str(out) if f == "OUT" else f for f in flags]
    result = subprocess.run(
        [sys.executable, "-m", "pvae.cli", "train", *flags], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_sigterm_saves_a_checkpoint_at_the_batch_reached(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pvae.cli",
            "train",
            "--data",
            "digits:20000",
            "--batch-size",
            "16",
            "--out",
            str(run),
            *TINY,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "run folder" in proc.stderr.readline()  # training starts right after this line
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and f"pvae train --resume --out {run}" in err
    position = torch.load(run / "checkpoint.pt", weights_only=True)["position"]
    assert position["epoch"] == 0 and 0 < position["batch"] < 1250 and position["step"] == position["batch"]
