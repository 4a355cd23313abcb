"""Nothing lost to a crash, a kill or a NaN: checkpoints by time, the previous checkpoint kept,
a lock on the run folder, non-finite steps refused or skipped, determinism, and the one-line
errors of bad run folders and devices."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time

import pytest
import torch

from pvae import runs
from pvae.cli import main
from pvae.errors import UserError
from pvae.objectives import make_objective
from pvae.svi import SVI, NonFinite, make_optimizer
from pvae.train import Diverged, TrainConfig, Trainer

TINY = dict(data="digits:400", epochs=2, batch_size=50, latent_dim=4, hidden=[32], seed=3)
CLI = [sys.executable, "-m", "pvae.cli", "train", "--no-progress"]


def _weights(run) -> dict[str, torch.Tensor]:
    state = torch.load(run / runs.CHECKPOINT, weights_only=True)
    return {f"{part}.{k}": v for part in ("model", "guide") for k, v in state[part].items()}


def test_kill_9_at_any_moment_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = ["--data", "digits:3000", "--batch-size", "8", "--epochs", "1", "--latent-dim", "4", "--hidden", "32"]
    args += ["--checkpoint-every", "0"]  # after every step: a kill loses at most the step in flight
    proc = subprocess.Popen([*CLI, *args, "--out", str(tmp_path / "b")], stderr=subprocess.PIPE, text=True)
    try:
        assert "run folder" in proc.stderr.readline()
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    step = runs.load_checkpoint(tmp_path / "b")["position"]["step"]
    assert 0 < step < 375
    assert main(["train", "--resume", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert main(["train", *args, "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", "digits:200", "--epochs", "2", "--out", str(run), "--no-progress"]) == 0
    previous = torch.load(run / runs.PREVIOUS, weights_only=True)["position"]
    assert previous["epoch"] == 1
    data = (run / runs.CHECKPOINT).read_bytes()
    (run / runs.CHECKPOINT).write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--epochs", "3", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"using the previous checkpoint {run / runs.PREVIOUS} (step {previous['step']})" in err
    assert runs.load_checkpoint(run)["position"]["epoch"] == 3


class _NotATensor:
    """An object a weights-only load refuses."""


@pytest.mark.parametrize(
    "damage, cause",
    [
        ("truncated", "checkpoint.pt and checkpoint.prev.pt: truncated (not a whole zip archive)"),
        ("empty", "checkpoint.pt and checkpoint.prev.pt: empty"),
        ("mixed", "checkpoint.pt: holds more than tensors and plain values (torch.load with weights_only "
                  "refuses it); checkpoint.prev.pt: missing"),
    ],
)  # fmt: skip
def test_no_readable_checkpoint_is_one_short_line_naming_both_files(tmp_path, damage, cause):
    run = tmp_path / "run"
    run.mkdir(parents=True)
    for name in (runs.CHECKPOINT, runs.PREVIOUS):
        torch.save({"position": {"step": 1}, "model": {"w": torch.zeros(1000)}}, run / name)
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    if damage == "mixed":
        torch.save({"model": _NotATensor()}, run / runs.CHECKPOINT)
        (run / runs.PREVIOUS).unlink()
    with pytest.raises(UserError) as error:
        runs.load_checkpoint(run)
    message = str(error.value)
    assert message == f"{run}: no readable checkpoint ({cause})"
    assert "\n" not in message and len(message) - len(str(run)) < 200


def test_a_second_train_in_a_running_folder_is_refused_and_a_dead_lock_is_not(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with runs.RunLock(run):
        with pytest.raises(UserError, match="another pvae train is running in this folder"):
            Trainer(TrainConfig(**TINY), run, progress=False).train()
    # a process killed while holding the lock does not hold it any more
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pvae import runs; import pathlib, time; runs.RunLock(pathlib.Path({str(run)!r}))"
         ".__enter__(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    Trainer(TrainConfig(**TINY), run, progress=False).train()


def test_an_absurd_learning_rate_stops_in_one_line_with_the_last_good_weights(tmp_path):
    trainer = Trainer(TrainConfig(**TINY, lr=1e12), tmp_path / "run", progress=False, log=lambda line: None)
    with pytest.raises(Diverged, match=r"non-finite loss .* at step 2 .*may be too high \(--lr 1e\+12\)") as e:
        trainer.train()
    assert "\n" not in str(e.value)
    state = runs.load_checkpoint(tmp_path / "run")
    assert state["position"]["step"] == 1
    assert all(torch.isfinite(v).all() for part in ("model", "guide") for v in state[part].values())


def test_a_large_learning_rate_is_named_once_when_the_loss_explodes(tmp_path):
    lines = []
    Trainer(TrainConfig(**TINY, lr=1e6), tmp_path / "run", progress=False, log=lines.append).train()
    warnings = [line for line in lines if "the loss jumped" in line]
    assert len(warnings) == 1 and "the learning rate may be too high (--lr 1e+06)" in warnings[0]


def _poison(trainer: Trainer) -> Trainer:
    """NaN in one pixel of the third batch of every epoch."""
    batches = trainer.train_split.batches

    def poisoned(*args, **kwargs):
        for i, (x, labels) in enumerate(batches(*args, **kwargs)):
            if i == 2:
                x = x.clone()
                x[0, 0] = float("nan")
            yield x, labels

    trainer.train_split.batches = poisoned
    return trainer


def test_a_nan_in_the_data_is_named_as_the_cause_and_can_be_skipped(tmp_path):
    lines = []
    trainer = _poison(Trainer(TrainConfig(**TINY), tmp_path / "a", progress=False, log=lines.append))
    with pytest.raises(Diverged, match="at step 3 .*the batch holds NaN or inf values: check the data"):
        trainer.train()
    config = TrainConfig(**TINY, skip_nonfinite=2)
    _poison(Trainer(config, tmp_path / "b", progress=False, log=lines.append)).train()
    rows = (tmp_path / "b" / runs.METRICS).read_text().splitlines()
    assert rows[0].endswith(",skipped") and [r.split(",")[-1] for r in rows[1:]] == ["1", "2"]
    assert [r.split(",")[1] for r in rows[1:]] == ["7", "14"]  # 8 batches an epoch, one skipped in each
    assert sum("skipped step" in line for line in lines) == 2


@pytest.mark.parametrize("check", ["eager", "jit"])
def test_a_nan_gradient_under_a_finite_loss_leaves_the_parameters_as_they_were(check):
    """One NaN in one gradient element (a hook on the decoder's last bias puts it there after the
    loss was computed) stops the step before the optimiser moves anything. ``check``: eager, or
    through the traced loss."""
    from guides.mlp import MLPGuide
    from models.gaussian_vae import GaussianVAE

    torch.manual_seed(0)
    model, guide = GaussianVAE(16, 2, [8]), MLPGuide(16, 2, hidden=[8])
    params = [*model.parameters(), *guide.parameters()]
    svi = SVI(model, guide, make_objective("elbo"), make_optimizer(params, 1e-2), jit=check == "jit")
    x = (torch.rand(6, 16) < 0.5).float()
    for _ in range(2):
        svi.step(x)
    before = [p.detach().clone() for p in params]

    def one_nan(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[3] = float("nan")
        return grad

    handle = model.decoder.net[-1].bias.register_hook(one_nan)
    with pytest.raises(NonFinite, match="non-finite gradient"):
        svi.step(x)
    handle.remove()
    for p, q in zip(params, before):
        assert torch.equal(p, q)
    svi.step(x)  # and the next good step trains
    assert not all(torch.equal(p, q) for p, q in zip(params, before))


def test_an_exploding_loss_is_reported_once(tmp_path):
    lines = []
    trainer = Trainer(TrainConfig(**TINY), tmp_path / "run", progress=False, log=lines.append)
    step = trainer.svi.step
    losses = itertools.chain([100.0] * 11, [1e9, 1e12], itertools.repeat(100.0))  # two explosions: one line

    def exploding(*args):
        step(*args)
        trainer.svi.loss_sum = next(losses) * 50  # the batch's summed loss (batch 50)

    trainer.svi.step = exploding
    trainer.train()
    warnings = [line for line in lines if "the loss jumped" in line]
    assert len(warnings) == 1 and "to 1e+09 at step 12, from a best of 100" in warnings[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--data", "digits:300", "--epochs", "2", "--batch-size", "64", "--latent-dim", "4", "--hidden", "16"],
        ["--model", "sketch", "--steps", "6", "--latent-dim", "4", "--enc-hidden", "8", "--dec-hidden", "8"]
        + ["--mixtures", "2", "--batch-size", "32"],
    ],
    ids=["image", "sketch"],
)
def test_the_same_command_writes_the_same_metrics(tmp_path, args):
    for name in "ab":
        subprocess.run([*CLI, *args, "--out", str(tmp_path / name)], check=True, capture_output=True, timeout=300)
    a, b = ((tmp_path / name / runs.METRICS).read_bytes() for name in "ab")
    assert a == b and a.count(b"\n") >= 2


def test_a_resume_with_nothing_left_to_do_changes_no_file(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", "digits:200", "--steps", "2", "--out", str(run), "--no-progress"]) == 0
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--out", "FILE"], "is a file, not a folder"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "nonsense"], "--device"),
        (["--steps", "0"], "--steps 0: must be at least 1"),
    ],
)
def test_bad_runs_and_devices_are_one_line(tmp_path, flags, message):
    (tmp_path / "file").write_text("not a folder")
    flags = [str(tmp_path / "file") if f == "FILE" else f for f in flags]
    if "--out" not in flags:
        flags += ["--out", str(tmp_path / "run")]
    result = subprocess.run([*CLI, "--data", "digits:100", *flags], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
