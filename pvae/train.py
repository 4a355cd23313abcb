"""Training: SVI epochs with a progress bar, per-epoch metrics, atomic checkpoints, resume, figures.

A run is reproducible from its seed: the seed fixes the initial weights, the shuffling and dynamic
binarisation (a data generator whose state is saved at the start of each epoch) and the Monte
Carlo draws (torch's global generator, saved in every checkpoint). An interrupted run (Ctrl-C,
SIGTERM) saves a checkpoint at the batch it reached; ``resume`` replays the epoch's order from
the saved generator state, skips the finished batches and continues, so an interrupted and
resumed run ends with the same weights as one that was never stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

import pvae
from pvae import render, runs
from pvae.data import ImageData, absolute_spec, epoch_batches, load_dataset
from pvae.errors import UserError
from pvae.inspect import training_figures
from pvae.objectives import OBJECTIVES, TraceELBO, make_objective
from pvae.svi import SVI, make_optimizer

METRIC_FIELDS = ("epoch", "step", "train_loss", "test_elbo", "seconds")
EVAL_SEED = 12345  # Monte Carlo draws of the per-epoch test ELBO (the same every epoch)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json["train"]``)."""

    model: str = "gaussian"
    guide: str = "mlp"
    objective: str = "elbo"
    particles: int = 1
    data: str = "digits"
    epochs: int = 15
    batch_size: int = 128
    lr: float = 1e-3
    latent_dim: int = 20
    hidden: list[int] = field(default_factory=lambda: [400])
    activation: str = "relu"
    likelihood: str = "bernoulli"
    obs_scale: float | None = None
    posterior_scale: str = "softplus"
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    lr_schedule: str = "constant"
    train_limit: int | None = None
    seed: int = 0

    def check(self) -> None:
        """Raise ``UserError`` naming the first flag whose value cannot work."""
        if self.objective not in OBJECTIVES:
            raise UserError(f"--objective {self.objective}: unknown; choose one of {', '.join(OBJECTIVES)}")
        positive = {
            "--particles": self.particles,
            "--epochs": self.epochs,
            "--batch-size": self.batch_size,
            "--latent-dim": self.latent_dim,
        }
        for flag, value in positive.items():
            if value < 1:
                raise UserError(f"{flag} {value}: must be at least 1")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise UserError(f"--lr {self.lr}: must be a positive number")
        if any(h < 1 for h in self.hidden):
            raise UserError(f"--hidden {' '.join(map(str, self.hidden))}: layer sizes must be at least 1")
        if self.obs_scale is not None and not self.obs_scale > 0:
            raise UserError(f"--obs-scale {self.obs_scale}: must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"--lr-schedule {self.lr_schedule}: unknown; choose one of {', '.join(LR_SCHEDULES)}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise UserError(f"--adam-betas {' '.join(map(str, self.adam_betas))}: give two numbers in [0, 1)")
        if not self.adam_eps > 0:
            raise UserError(f"--adam-eps {self.adam_eps}: must be positive")
        if self.train_limit is not None and self.train_limit < 1:
            raise UserError(f"--train-limit {self.train_limit}: must be at least 1")


def iwae_lr_factor(epoch: int) -> float:
    """Burda et al.'s schedule: stage i = 1, 2, ... lasts 3^(i-1) epochs at lr * 10^(-(i-1)/7)
    (eight stages, 3280 epochs, in the paper); ``epoch`` counts from 0."""
    stage, end = 1, 1
    while epoch >= end:
        stage += 1
        end += 3 ** (stage - 1)
    return 10 ** (-(stage - 1) / 7)


LR_SCHEDULES: dict[str, Callable[[int], float]] = {"constant": lambda epoch: 1.0, "iwae": iwae_lr_factor}


def _empty_guide(*args, **kwargs) -> None:
    """The guide of a model with no latent sites."""


@torch.no_grad()
def evaluate_elbo(model, guide, images: torch.Tensor, batch_size: int = 1000, seed: int = EVAL_SEED) -> float:
    """The ELBO in nats per datapoint (one Monte Carlo sample each), with fixed draws from ``seed``."""
    device = next(model.parameters()).device
    elbo = TraceELBO(num_particles=1, vectorize_particles=True, max_plate_nesting=1)
    total = 0.0
    with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
        torch.manual_seed(seed)
        for x in images.split(batch_size):
            total -= float(elbo.differentiable_loss(model.model, guide.guide if guide else _empty_guide, x.to(device)))
    return total / len(images)


def _rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _read_metrics(path: Path, upto_epoch: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["epoch"]) <= upto_epoch]


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class Position:
    """Where training stands: saved in every checkpoint, so a run resumes at the same batch."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the current epoch
    step: int = 0  # optimiser steps in all
    loss_sum: float = 0.0  # sum of per-datapoint losses over the current epoch
    count: int = 0  # datapoints seen in the current epoch


class Interrupted(Exception):
    """Training stopped by the user; a checkpoint at the reached batch was saved."""


class Trainer:
    """Builds data, model, guide, objective and optimiser for one run folder and trains them.

    :param config: the run's configuration.
    :param out: the run folder (created if needed).
    :param device: torch device for model, guide and batches.
    :param progress: show a tqdm progress bar and a line per epoch.
    :param log: where the per-epoch lines go (``tqdm.write`` by default).
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path,
        device: str = "cpu",
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        config.check()
        self.config, self.out, self.device, self.progress = config, Path(out), torch.device(device), progress
        self.log = log or (lambda line: tqdm.write(line, file=sys.stderr))
        config.data = absolute_spec(config.data)
        self.data: ImageData = load_dataset(config.data)
        self.train_split = self.data.split("train").head(config.train_limit)
        pyro.set_rng_seed(config.seed)
        pyro.clear_param_store()
        candidates = dict(
            data_dim=self.data.data_dim,
            latent_dim=config.latent_dim,
            hidden=list(config.hidden),
            activation=config.activation,
            likelihood=config.likelihood,
            obs_scale=config.obs_scale,
            scale=config.posterior_scale,
        )
        self.model_spec = runs.make_spec("model", config.model, candidates)
        self.guide_spec = runs.make_spec("guide", config.guide, candidates)
        self.model = runs.build("model", **self.model_spec).to(self.device)
        self.guide = runs.build("guide", **self.guide_spec).to(self.device)
        if getattr(self.guide, "latent_dim", None) != getattr(self.model, "latent_dim", None):
            raise UserError(
                f"--guide {config.guide} gives latent_dim {self.guide.latent_dim}, "
                f"--model {config.model} needs {self.model.latent_dim}"
            )
        # Bernoulli pixels must be 0 or 1: grey training images are binarised afresh every epoch
        # and the test images once, with a fixed seed, so test numbers compare across epochs.
        self.binarize = getattr(self.model, "binary", False) and not self.data.binary
        self.test = runs.load_split(self.run_config(), "test", self.data)
        objective = make_objective(config.objective, config.particles)
        params = list(self.model.parameters()) + list(self.guide.parameters())
        optimizer = make_optimizer(params, config.lr, betas=tuple(config.adam_betas), eps=config.adam_eps)
        self.svi = SVI(self.model, self.guide, objective, optimizer)
        self.data_generator = torch.Generator().manual_seed(config.seed)

    def run_config(self) -> dict[str, Any]:
        return {
            "pvae_version": pvae.__version__,
            "train": dataclasses.asdict(self.config),
            "data": {
                "spec": self.config.data,
                "name": self.data.name,
                "kind": self.data.kind,
                "shape": list(self.data.shape),
                "binarize": "dynamic" if self.binarize else "none",
            },
            "model": self.model_spec,
            "guide": self.guide_spec,
        }

    def _checkpoint(self, at: Position, epoch_state: torch.Tensor) -> None:
        runs.save_checkpoint(
            self.out,
            {
                "model": self.model.state_dict(),
                "guide": self.guide.state_dict(),
                "optimizer": self.svi.optimizer.state_dict(),
                "position": dataclasses.asdict(at),
                "data_generator": epoch_state,  # data generator state at the start of the epoch
                "rng": _rng_state(),
            },
        )

    def _train_epoch(self, at: Position, bar: tqdm) -> None:
        """The rest of epoch ``at.epoch``, from batch ``at.batch`` on; updates ``at`` as it goes."""
        cfg = self.config
        batches = epoch_batches(self.train_split, cfg.batch_size, self.data_generator, self.binarize, skip=at.batch)
        for x, _ in batches:
            loss = self.svi.step(x.to(self.device))
            if not math.isfinite(loss):
                raise UserError(
                    f"the {cfg.objective} loss became {loss} at epoch {at.epoch + 1}, step {at.step + 1}; "
                    "try a smaller --lr"
                )
            at.loss_sum += loss * x.shape[0]
            at.count += x.shape[0]
            at.batch += 1
            at.step += 1
            bar.update()
            if at.batch % 10 == 0:
                bar.set_postfix_str(f"loss {at.loss_sum / at.count:.2f}", refresh=False)

    def train(self, resume: bool = False) -> Path:
        """Train up to ``config.epochs`` epochs, then draw the figures; returns the run folder."""
        cfg, out = self.config, self.out
        has_checkpoint = (out / runs.CHECKPOINT).is_file()
        if resume and not has_checkpoint:
            raise UserError(f"--resume: {out} holds no {runs.CHECKPOINT} to resume from")
        if not resume and has_checkpoint:
            raise UserError(f"--out {out}: already holds a run; pass --resume to continue it, or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        at = Position()
        if resume:
            state = runs.load_checkpoint(out, self.device)
            self.model.load_state_dict(state["model"])
            self.guide.load_state_dict(state["guide"])
            self.svi.optimizer.load_state_dict(state["optimizer"])
            at = Position(**state["position"])
            self.data_generator.set_state(state["data_generator"])
            _set_rng_state(state["rng"])
            self.svi.validated = True
        else:
            init = getattr(self.model, "init_output_bias", None)
            if init is not None:
                init(self.train_split.images.mean(0))
        runs.save_config(out, self.run_config())
        self.log(f"run folder: {out}")
        metrics = _read_metrics(out / runs.METRICS, at.epoch)
        _write_metrics(out / runs.METRICS, metrics)

        n_batches = math.ceil(len(self.train_split) / cfg.batch_size)
        if at.epoch >= cfg.epochs:
            self.log(f"{out}: all {cfg.epochs} epochs are done; pass --epochs N to train further")
        while at.epoch < cfg.epochs:
            for group in self.svi.optimizer.param_groups:
                group["lr"] = cfg.lr * LR_SCHEDULES[cfg.lr_schedule](at.epoch)
            epoch_state = self.data_generator.get_state()
            started = time.perf_counter()
            bar = tqdm(
                total=n_batches,
                initial=at.batch,
                desc=f"epoch {at.epoch + 1}/{cfg.epochs}",
                disable=not self.progress,
                leave=False,
                dynamic_ncols=True,
            )
            try:
                self._train_epoch(at, bar)
                bar.close()
                test_elbo = evaluate_elbo(self.model, self.guide, self.test.images)
            except KeyboardInterrupt:
                bar.close()
                self._checkpoint(at, epoch_state)
                raise Interrupted(
                    f"interrupted at epoch {at.epoch + 1}, batch {at.batch}/{n_batches}; checkpoint saved. "
                    f"Continue with: pvae train --resume --out {out}"
                ) from None
            seconds = time.perf_counter() - started
            row = {
                "epoch": at.epoch + 1,
                "step": at.step,
                "train_loss": f"{at.loss_sum / at.count:.4f}",
                "test_elbo": f"{test_elbo:.4f}",
                "seconds": f"{seconds:.2f}",
            }
            at = Position(epoch=at.epoch + 1, step=at.step)
            metrics.append(row)
            self._checkpoint(at, self.data_generator.get_state())
            _write_metrics(out / runs.METRICS, metrics)
            self.log(
                f"epoch {at.epoch}/{cfg.epochs}  train loss {row['train_loss']}  "
                f"test ELBO {row['test_elbo']} nats  ({seconds:.1f} s)"
            )
        self.figures(metrics)
        return out

    def figures(self, metrics: list[dict[str, Any]]) -> None:
        """The loss curve and the image figures of ``pvae.inspect.training_figures``."""
        folder = self.out / runs.FIGURES
        folder.mkdir(exist_ok=True)
        if metrics:
            epochs = [int(r["epoch"]) for r in metrics]
            render.loss_curves(
                epochs,
                {
                    f"train loss ({self.config.objective})": [float(r["train_loss"]) for r in metrics],
                    "test -ELBO": [-float(r["test_elbo"]) for r in metrics],
                },
                folder / "loss.png",
                ylabel="nats per datapoint",
            )
        training_figures(folder, self.model, self.guide, self.test, self.data.shape, seed=self.config.seed)


def train(
    config: TrainConfig, out: str | Path, resume: bool = False, device: str = "cpu", progress: bool = True
) -> Path:
    """Train a run (see ``Trainer``); returns its folder."""
    return Trainer(config, out, device=device, progress=progress).train(resume=resume)
