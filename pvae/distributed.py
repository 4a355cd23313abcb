"""Data-parallel training on PyTorch's own engine: ``torchrun`` (``torch.distributed.run``) starts
the processes and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``DistributedDataParallel``
averages the gradients of one module whose forward is the objective's differentiable loss (the
pattern of Pyro's own ``examples/svi_lightning.py``); gloo on CPU, NCCL on GPU.

Semantics (``docs/architecture.md``, "Data-parallel training"):

- ``--batch-size`` is global: a step reads one batch of B datapoints, drawn exactly as a single
  process draws it (the same shuffle, binarisation and augmentation from the run's seed), and rank
  r of N takes the r-th of N contiguous slices. Each rank's loss is its slices' summed loss times
  N / B, so DDP's average of the ranks' gradients is the gradient of the batch's mean loss: one
  data-parallel step equals one single-process step on the whole batch (with the same draws), and
  the learning rate means what it means in one process.
- Monte Carlo draws come from each rank's own generator (seed + rank), so ranks draw independently.
- Rank 0 alone writes the run folder; test ELBO and train loss are summed over ranks.
- Every step the ranks learn each other's loss sums and flags (a stop requested by Ctrl-C or
  SIGTERM, a checkpoint due) through the gradient all-reduce itself (``svi.ObjectiveLoss.report``),
  and a non-finite loss on one rank makes every rank's averaged gradient non-finite: all ranks stop,
  save or skip after the same step, with no collective of their own.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass

import pyro
import torch
import torch.distributed as dist

from pvae.errors import UserError

TIMEOUT = datetime.timedelta(minutes=5)  # a collective that waits longer than this fails the run


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the data-parallel ones: ``rank`` of ``world``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run folder and logs."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def shard(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """This rank's contiguous slice of a batch (the r-th of ``torch.tensor_split``'s N)."""
        return None if x is None else torch.tensor_split(x, self.world)[self.rank]

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (one all-reduce, float64)."""
        if not self.parallel:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        """Wait for every rank (before leaving the group: a rank that leaves while another still
        works can abort the gloo threads of both)."""
        if self.parallel:
            dist.barrier()

    def broadcast(self, value: object) -> object:
        """Rank 0's ``value`` on every rank."""
        if not self.parallel:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: object) -> list[object]:
        """``value`` of every rank, in rank order (plain Python values and tensors)."""
        if not self.parallel:
            return [value]
        out: list[object] = [None] * self.world
        dist.all_gather_object(out, value)
        return out


def _collective_device() -> torch.device:
    """Where collectives take tensors: the rank's GPU under NCCL, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def start(device: str) -> tuple[Ranks, str]:
    """Join the process group ``torchrun`` set up (when ``WORLD_SIZE`` > 1), and the device this
    rank uses: ``cuda:LOCAL_RANK`` when the run asks for CUDA, else ``device`` as given."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: this torch has no CUDA device (torch {torch.__version__})")
        device = f"cuda:{ranks.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    pyro.settings.set(module_local_params=True)  # parameters stay in their modules, which DDP wraps
    return ranks, device


def wrap(module: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """``module`` in ``DistributedDataParallel`` for a parallel run (as it is otherwise). Buffers
    are constants here, so they are not broadcast every step."""
    if not ranks.parallel:
        return module
    ddp = torch.nn.parallel.DistributedDataParallel
    # torch >= 2.13 names the switch forward_sync_buffers; earlier ones broadcast_buffers
    constant = (
        "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters else "broadcast_buffers"
    )
    device_ids = [device.index] if device.type == "cuda" else None
    return ddp(module, device_ids=device_ids, gradient_as_bucket_view=True, **{constant: False})


def stop() -> None:
    """Leave the process group (at the end of a parallel run)."""
    if dist.is_initialized():
        dist.destroy_process_group()
