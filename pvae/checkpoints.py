"""Nothing lost when a run is interrupted: where training stands (``Position``), the random states
a run draws from, the checkpoint's contents and their restoring on ``--resume``, and the stop
requests of SIGINT and SIGTERM (``StopRequests``).

A checkpoint holds only tensors and plain Python values (``runs.save_checkpoint`` writes it
atomically; ``runs.load_checkpoint`` reads it with ``weights_only=True``). An interrupted run
saves one at the batch it reached; ``--resume`` replays the epoch from the saved data generator
state, skips the finished batches and continues, so an interrupted and resumed run ends with the
same weights as one that was never stopped.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import threading
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Position:
    """Where training stands: saved in every checkpoint, so a run resumes at the same batch."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the current epoch (skipped ones included)
    step: int = 0  # optimiser steps in all
    loss_sum: float = 0.0  # sum of per-datapoint losses over the current epoch
    count: int = 0  # datapoints seen in the current epoch
    skipped: int = 0  # steps skipped in all for a non-finite loss or gradient (--skip-nonfinite)
    rows: int | None = None  # rows of metrics.csv when the checkpoint was written (None: before this field)


class Interrupted(Exception):
    """Training stopped by a signal (``signum``); what was saved is in the message."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum


class StopRequests:
    """SIGINT and SIGTERM while training: the first asks to stop after the step in flight (so the
    checkpoint is exactly the state after a whole step, and a resumed run equals one never
    stopped); a second stops at once (``KeyboardInterrupt``). Handlers are installed in the main
    thread only, and restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def rng_state() -> dict[str, Any]:
    """The random states a run draws from: torch's CPU generator, CUDA's where in use, Python's."""
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def checkpoint_state(
    model: nn.Module,
    guide: nn.Module | None,
    networks: nn.Module,
    optimizer: torch.optim.Optimizer,
    at: Position,
    data_generator: torch.Tensor,
    rng: list[dict[str, Any]],
    planned_steps: int,
) -> dict[str, Any]:
    """What ``checkpoint.pt`` holds at ``at``: the weights (the objective's ``networks``, a
    discriminator, too), the optimiser, the position, the data generator state at the start of the
    epoch, every rank's random states and the steps the run was planned for (its schedules keep them)."""
    return {
        "model": model.state_dict(),
        "objective": networks.state_dict(),
        "guide": None if guide is None else guide.state_dict(),
        "optimizer": optimizer.state_dict(),
        "position": dataclasses.asdict(at),
        "data_generator": data_generator,
        "rng": rng[0] if len(rng) == 1 else rng,  # one state per rank in a parallel run
        "planned_steps": planned_steps,
    }


def restore(
    state: dict[str, Any],
    model: nn.Module,
    guide: nn.Module | None,
    networks: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_generator: torch.Generator,
) -> Position:
    """Load a checkpoint's weights, optimiser and data generator state; its ``Position``. The
    optimiser's groups keep their ``lr_ratio`` (a discriminator's own rate)."""
    model.load_state_dict(state["model"])
    if guide is not None:
        guide.load_state_dict(state["guide"])
    networks.load_state_dict(state.get("objective", {}))
    ratios = [group["lr_ratio"] for group in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])  # takes the saved groups' keys
    for group, ratio in zip(optimizer.param_groups, ratios):
        group["lr_ratio"] = ratio
    data_generator.set_state(state["data_generator"])
    return Position(**state["position"])


def restore_rng(saved: dict | list, rank: int, world: int, seed: int, step: int) -> None:
    """This rank's random state from a checkpoint: its own where the run had as many ranks; after a
    change of rank count, rank 0's, and other ranks reseeded from (seed, step, rank)."""
    states = saved if isinstance(saved, list) else [saved]
    set_rng_state(states[rank] if len(states) == world else states[0])
    if len(states) != world and rank:
        torch.manual_seed(seed + 1_000_003 * step + rank)
