"""Data-parallel training under torchrun (gloo on 127.0.0.1, 2 processes, tiny models): one step
equals a single-process step on the whole batch, parameters stay identical on the ranks, rank 0
alone writes a run folder every other command reads, resume with another number of ranks, and a
killed rank ends the run in bounded time."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from pvae import runs
from pvae.cli import main

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
TINY = ["--data", "digits:256", "--batch-size", "64", "--latent-dim", "4", "--hidden", "16", "--no-progress"]

# Runs on each of two ranks: three data-parallel steps; after each, every rank checks that the
# parameters equal rank 0's, and rank 0 checks them against single-process steps on the whole batch
# that use the same draws (each rank's slice drawn from the seed the rank used).
STEPS = """
import sys, pyro, torch
from pvae import distributed
from pvae.objectives import make_objective
from pvae.svi import SVI, ObjectiveLoss, make_optimizer
from models.gaussian_vae import GaussianVAE
from guides.mlp import MLPGuide

def pair():
    torch.manual_seed(0)
    model, guide = GaussianVAE(784, 4, hidden=[16]), MLPGuide(784, 4, hidden=[16])
    return model, guide, make_optimizer([*model.parameters(), *guide.parameters()], 0.01)

ranks, _ = distributed.start("cpu")
pyro.settings.set(module_local_params=True)  # two model/guide pairs in one process: no shared param store
objective = sys.argv[1]
data = torch.Generator().manual_seed(1)  # the same batch on every rank
x = torch.bernoulli(torch.rand(10, 784, generator=data), generator=data)  # 10 rows: slices 5 + 5
model, guide, optimizer = pair()
svi = SVI(model, guide, make_objective(objective, 3), optimizer, ranks=ranks)
ref_model, ref_guide, ref_optimizer = pair()
reference = ObjectiveLoss(ref_model, ref_guide, make_objective(objective, 3))
params = lambda *modules: torch.cat([p.detach().reshape(-1) for m in modules for p in m.parameters()])
for step in range(3):
    torch.manual_seed(100 * step + ranks.rank)
    svi.step(ranks.shard(x), total=len(x))
    mine = params(model, guide)
    assert all(torch.equal(mine, other) for other in ranks.gather(mine)), "ranks differ"
    if ranks.main:
        total = 0
        for r, part in enumerate(torch.tensor_split(x, 2)):
            torch.manual_seed(100 * step + r)
            total = total + reference(part)
        (total / len(x)).backward()
        ref_optimizer.step()
        ref_optimizer.zero_grad()
        gap = (mine - params(ref_model, ref_guide)).abs().max().item()
        assert gap < 1e-5, gap
        print("max difference", gap, flush=True)
ranks.barrier()
distributed.stop()
"""


@pytest.mark.parametrize("objective", ["elbo", "iwae-dreg"])
def test_a_data_parallel_step_equals_a_single_process_step_on_the_whole_batch(tmp_path, objective):
    script = tmp_path / "steps.py"
    script.write_text(STEPS)
    result = subprocess.run([*TORCHRUN, str(script), objective], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("max difference") == 3


def test_two_ranks_write_one_run_folder_that_every_command_reads_and_resume_with_one(tmp_path, capsys):
    run = tmp_path / "run"
    result = subprocess.run(
        [*TORCHRUN, "-m", "pvae.cli", "train", *TINY, "--epochs", "2", "--out", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("done: ") == 1 and result.stderr.count("run folder: ") == 1  # rank 0 speaks
    rows = (run / runs.METRICS).read_text().splitlines()
    assert len(rows) == 3 and rows[-1].startswith("2,8,")  # 256 / 64 = 4 global batches an epoch
    state = torch.load(run / runs.CHECKPOINT, weights_only=True)
    assert isinstance(state["rng"], list) and len(state["rng"]) == 2  # one random state per rank
    assert json.loads((run / runs.CONFIG).read_text())["train"]["batch_size"] == 64
    assert main(["bounds", str(run), "--k", "1", "5", "--limit", "20", "--no-progress"]) == 0
    assert main(["inspect", str(run), "--limit", "30"]) == 0
    assert main(["sample", str(run), "-n", "4"]) == 0
    # the same run goes on in one process
    assert main(["train", "--resume", "--out", str(run), "--epochs", "3", "--no-progress"]) == 0
    assert runs.load_checkpoint(run)["position"]["step"] == 12


def test_the_completion_model_trains_data_parallel(tmp_path):
    # its baseline network is trained apart and frozen: DDP sees no parameter without a gradient
    args = ["--model", "completion", "--baseline-epochs", "1", "--steps", "3", "--latent-dim", "4"]
    result = subprocess.run(
        [*TORCHRUN, "-m", "pvae.cli", "train", *TINY, *args, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_killed_rank_ends_the_run_in_bounded_time_and_it_resumes(tmp_path):
    run = tmp_path / "run"
    args = ["--data", "digits:20000", "--batch-size", "16", "--epochs", "3", "--latent-dim", "4", "--hidden", "16"]
    command = [sys.executable, "-m", "pvae.cli", "train", "--nproc", "2", *args, "--no-progress"]
    launcher = subprocess.Popen([*command, "--out", str(run), "--checkpoint-every", "0"], stderr=subprocess.PIPE)
    try:
        while b"run folder" not in launcher.stderr.readline():
            pass
        time.sleep(1.0)
        children = subprocess.run(["pgrep", "-f", f"pvae.cli train.*--out {run}"], capture_output=True, text=True)
        workers = [int(p) for p in children.stdout.split() if int(p) != launcher.pid]
        torchrun = [p for p in workers if b"torch.distributed.run" in open(f"/proc/{p}/cmdline", "rb").read()]
        ranks = [p for p in workers if p not in torchrun]
        assert len(ranks) == 2, children.stdout
        killed = time.monotonic()
        subprocess.run(["kill", "-9", str(max(ranks))], check=True)
        _, err = launcher.communicate(timeout=120)
        assert time.monotonic() - killed < 60
    finally:
        launcher.kill()
    assert launcher.returncode == 2
    last = err.decode().rstrip().splitlines()[-1]
    assert last.startswith("pvae train: error: rank 1 of 2 was killed (signal 9), so the others were stopped"), err
    assert f"continue with: pvae train --resume --out {run}" in last
    step = runs.load_checkpoint(run)["position"]["step"]
    assert main(["train", "--resume", "--out", str(run), "--steps", str(step + 3), "--no-progress"]) == 0
