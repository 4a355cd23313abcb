"""Per-epoch reporting of a run: ``metrics.csv`` and ``timing.csv`` (one row per epoch, or per stop
inside one, written atomically), the line each epoch logs, and the figures a finished run draws
(the loss curve, then the data kind's own).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pvae import render, runs
from pvae.errors import UserError

METRIC_FIELDS = ("epoch", "step", "train_loss", "test_elbo", "test_recon", "test_kl")  # then the kind's, "skipped"
TIMING_FIELDS = ("epoch", "step", "seconds")
TENSORBOARD = "tb"  # RUN/tb/: the event files of --tensorboard


def read_rows(path: Path, upto_step: int, count: int | None) -> list[dict[str, str]]:
    """The first ``count`` rows of a per-epoch csv file (those written before the checkpoint a run
    resumes from), or for checkpoints that do not count them, the rows up to step ``upto_step``."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[:count] if count is not None else [row for row in rows if int(row["step"]) <= upto_step]


def write_rows(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    """Write ``rows`` as csv atomically (a kill leaves the old file or the new one)."""
    runs.atomic_write_text(path, csv_text(rows, fields))


def csv_text(rows: list[dict[str, Any]], fields: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def metric_fields(kind) -> list[str]:
    """The columns of ``metrics.csv`` for runs of data ``kind``: its own terms after the ELBO's."""
    return [*METRIC_FIELDS, *(f"test_{term}" for term in kind.report_terms), "skipped"]


def epoch_row(epoch: int, step: int, train_loss: float, test: dict[str, float], skipped: int) -> dict[str, Any]:
    """The ``metrics.csv`` row of an epoch (or of a stop inside one)."""
    row = {"epoch": epoch, "step": step, "train_loss": f"{train_loss:.4f}"}
    row.update({f"test_{k}": f"{v:.4f}" for k, v in test.items()})
    row["skipped"] = skipped
    return row


def epoch_line(row: dict[str, Any], epochs: int | None, test: dict[str, float], density: bool, seconds: float) -> str:
    """The line an epoch logs: its step, train loss, test ELBO and KL (for a point-estimate guide,
    log p(x, mu(x)) and -log p(mu(x)) in their place), the kind's terms and the time it took."""
    extra = "".join(f"  {k} {test[k]:.3f}" for k in test if k not in ("elbo", "recon", "kl"))
    if density:
        summary = f"test ELBO {test['elbo']:.2f} nats (KL {test['kl']:.2f})"
    else:
        summary = f"test log p(x, mu(x)) {test['elbo']:.2f} nats (-log p(mu(x)) {test['kl']:.2f})"
    return (
        f"epoch {row['epoch']}{'' if epochs is None else f'/{epochs}'}  step {row['step']}  "
        f"train loss {row['train_loss']}  {summary}{extra}  ({seconds:.1f} s)"
    )


def loss_figure(folder: Path, metrics: list[dict[str, Any]], objective: str) -> None:
    """The train loss and test -ELBO per epoch, ``folder/loss.png``."""
    epochs = [int(r["epoch"]) for r in metrics]
    render.loss_curves(
        epochs,
        {
            f"train loss ({objective})": [float(r["train_loss"]) for r in metrics],
            "test -ELBO": [-float(r["test_elbo"]) for r in metrics],
        },
        folder / "loss.png",
        ylabel="nats per datapoint",
    )


def figures(out: Path, metrics: list[dict[str, Any]], kind, model, guide, test, run: dict[str, Any]) -> None:
    """A finished run's figures: the loss curve, and the data kind's own figures of the trained pair."""
    folder = out / runs.FIGURES
    folder.mkdir(exist_ok=True)
    if metrics:
        loss_figure(folder, metrics, run["train"]["objective"])
    kind.training_figures(out, model, guide, test, run, seed=run["train"]["seed"])


def require_tensorboard() -> None:
    """``UserError`` (one line naming the extra) when ``torch.utils.tensorboard`` cannot be imported."""
    try:
        import torch.utils.tensorboard  # noqa: F401  (it needs the tensorboard package)
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'pvae[tensorboard]'") from None


class TensorBoard:
    """``--tensorboard``: the run for TensorBoard, in event files under ``RUN/tb/``: the train loss and
    learning rate of every step (``train/loss``, ``train/lr``), each epoch's ``metrics.csv`` row
    (``epoch/train_loss``, ``test/elbo``, ``test/kl``, ...) at its step, and the finished run's
    figures (``figures/NAME``). A resumed run appends, after purging what was logged past its
    checkpoint (``purge_step``), so a step is never shown twice."""

    def __init__(self, run: Path, purge_step: int | None = None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run / TENSORBOARD), purge_step=purge_step)

    def step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, row: dict[str, Any]) -> None:
        """The numbers of one ``metrics.csv`` row (``epoch_row``), at its step; then the file is flushed."""
        step = int(row["step"])
        for name, value in row.items():
            if name in ("step", "skipped") or value in ("", None):
                continue
            tag = name.replace("test_", "test/", 1) if name.startswith("test_") else f"epoch/{name}"
            self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def figures(self, folder: Path, step: int) -> None:
        """Every PNG that training drew in ``folder`` (``RUN/figures/``), as an image at ``step``."""
        from matplotlib.image import imread

        for path in sorted(folder.glob("*.png")):
            pixels = imread(path)  # (H, W, 3 or 4) floats in [0, 1]
            self.writer.add_image(f"figures/{path.stem}", pixels[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
