"""`pvae train` end to end: the run folder, resume after an interruption, and bad input."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import threading
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
            "num_classes": 0,
            "learned_prior": False,
            "prior": "normal",
            "label_regularised": False,
        },
    }
    trainer = Trainer(TrainConfig(**config["train"]), tmp_path / "unused", progress=False)
    terms = elbo_terms(model, guide, trainer.test.images)
    assert terms["elbo"] == pytest.approx(float(rows[-1]["test_elbo"]), abs=1e-3)
    assert terms["elbo"] == pytest.approx(terms["recon"] - terms["kl"]) and terms["kl"] > 0


def _config(**kw):
    base = dict(data="digits:400", epochs=3, batch_size=50, latent_dim=4, hidden=[32], seed=3)
    return TrainConfig(**{**base, **kw})


def _same_weights(a: Trainer, b: Trainer) -> None:
    for x, y in ((a.model, b.model), (a.guide, b.guide)):
        for (name, p), q in zip(x.state_dict().items(), y.state_dict().values()):
            assert torch.equal(p, q), name


def test_a_signal_inside_a_step_finishes_it_and_the_resumed_run_is_exact(tmp_path):
    straight = Trainer(_config(), tmp_path / "a", progress=False)
    straight.train()

    stopped = Trainer(_config(), tmp_path / "b", progress=False)
    step, calls = stopped.svi.step, [0]

    def signalled_at_13(*args):
        calls[0] += 1
        if calls[0] == 13:  # a real SIGTERM from another thread lands while step 13 runs
            threading.Timer(0.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
            time.sleep(0.2)
        return step(*args)

    stopped.svi.step = signalled_at_13
    # step 13 had taken its flags before the signal: the stop rides on step 14, as all ranks see it
    with pytest.raises(Interrupted, match="epoch 2, batch 6/8") as e:
        stopped.train()
    assert e.value.signum == signal.SIGTERM
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert {k: state["position"][k] for k in ("epoch", "batch", "step")} == {"epoch": 1, "batch": 6, "step": 14}

    resumed = Trainer(_config(), tmp_path / "b", progress=False)
    resumed.train(resume=True)
    _same_weights(straight, resumed)
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")


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
        (["--model", "nope", "--out", "OUT"], "argument --model: invalid choice: 'nope'"),
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


def test_sigterm_at_a_random_moment_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = ["--data", "digits:4000", "--batch-size", "8", "--epochs", "5", "--seed", "2", *TINY]
    command = [sys.executable, "-m", "pvae.cli", "train"]
    proc = subprocess.Popen([*command, *args, "--out", str(tmp_path / "b")], stderr=subprocess.PIPE, text=True)
    try:
        assert "run folder" in proc.stderr.readline()  # training starts right after this line
        time.sleep(random.Random().uniform(0.1, 1.5))  # the run takes several seconds
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err  # as a process stopped by SIGTERM
    assert "checkpoint saved" in err and f"pvae train --resume --out {tmp_path / 'b'}" in err
    position = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["position"]
    assert 0 < position["step"] < 2500
    assert main(["train", "--resume", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert main(["train", *args, "--out", str(tmp_path / "a")]) == 0
    a, b = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True) for r in "ab")
    for part in ("model", "guide"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), name
