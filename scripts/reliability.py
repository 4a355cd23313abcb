"""Reliability table: kill -9 at random moments with resume after each, a damaged newest checkpoint,
NaN injection, fuzzed readers, hostile headers with their peak memory, and crafted pickles.

Prints one table (case, trials, passed, worst loss of work, peak memory):

    python scripts/reliability.py                  # about 5 minutes on 2 cores
    python scripts/reliability.py --kills 3 --fuzz 200   # a quick look

Each kill case trains one run, kills it with SIGKILL at a random moment after training starts,
resumes, kills again, ... (``--kills`` times), lets the last resume finish, and compares the final
weights with an uninterrupted run of the same command: "passed" means bit-identical. The loss of
work of a kill is the training time since the newest checkpoint was written (``--checkpoint-every``,
plus the epoch's evaluation when the kill lands in it).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from pvae import runs
from pvae.errors import DataError
from pvae.kinds.image.mnist import load_binarized_mnist, read_idx
from pvae.kinds.strokes.data import read_stroke_file, save_stroke_cache
from pvae.kinds.strokes.quickdraw import read_ndjson

from tables import markdown

CLI = [sys.executable, "-m", "pvae.cli", "train", "--no-progress"]
MB = 1 << 20


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / runs.CHECKPOINT, weights_only=True)
    return {f"{part}.{k}": v for part in ("model", "guide") for k, v in state[part].items()}


def kill_and_resume(args: list[str], kills: int, folder: Path, rng: random.Random) -> tuple[int, int, float, int]:
    """(trials, passed, worst seconds of work lost, resumes from the previous checkpoint): ``kills``
    SIGKILLs of one run, each followed by a resume, then the weights compared with a straight run."""
    straight, killed = folder / "straight", folder / "killed"
    subprocess.run([*CLI, *args, "--out", str(straight)], check=True, capture_output=True)
    lost, lost_warnings, command = [], [], [*CLI, *args, "--out", str(killed)]
    for _ in range(kills):
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        seen = []  # a resume may first warn that it falls back to the previous checkpoint
        while not any("run folder" in line or "nothing to do" in line for line in seen):
            seen.append(proc.stderr.readline())
            if not seen[-1]:
                raise RuntimeError(f"the run did not start: {''.join(seen)}")
        if "nothing to do" in seen[-1]:  # finished before this kill
            proc.wait()
            break
        started = time.time()
        lost_warnings.extend(line for line in seen if "previous checkpoint" in line)
        time.sleep(rng.uniform(0.0, 2.0))
        now = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode != -signal.SIGKILL:  # it had finished before the kill: start again
            break
        saved = [(killed / n).stat().st_mtime for n in (runs.CHECKPOINT, runs.PREVIOUS) if (killed / n).exists()]
        lost.append(now - max([*saved, started]))  # training time since the newest checkpoint
        command = [*CLI, "--resume", "--out", str(killed)]
    subprocess.run([*CLI, "--resume", "--out", str(killed)], check=True, capture_output=True)
    a, b = _weights(straight), _weights(killed)
    same = all(torch.equal(a[k], b[k]) for k in a)
    return len(lost), len(lost) if same else 0, max(lost, default=0.0), len(lost_warnings)


def damaged_checkpoint(folder: Path) -> tuple[int, int]:
    run = folder / "damaged"
    base = ["--data", "digits:200", "--latent-dim", "4", "--hidden", "16", "--out", str(run)]
    subprocess.run([*CLI, *base, "--epochs", "2"], check=True, capture_output=True)
    data = (run / runs.CHECKPOINT).read_bytes()
    (run / runs.CHECKPOINT).write_bytes(data[: len(data) // 3])
    done = subprocess.run([*CLI, "--resume", "--out", str(run), "--epochs", "3"], capture_output=True, text=True)
    warned = sum("using the previous checkpoint" in line for line in done.stderr.splitlines()) == 1
    return 1, int(done.returncode == 0 and warned and runs.load_checkpoint(run)["position"]["epoch"] == 3)


def nan_injection(folder: Path) -> tuple[int, int]:
    """A NaN pixel in a training batch: one line naming the data; with --skip-nonfinite, skipped."""
    from pvae.train import Diverged, TrainConfig, Trainer

    passed = 0
    for skip in (0, 1):
        config = TrainConfig(data="digits:200", epochs=1, batch_size=50, latent_dim=4, hidden=[16], skip_nonfinite=skip)
        trainer = Trainer(config, folder / f"nan{skip}", progress=False, log=lambda line: None)
        batches = trainer.train_split.batches

        def poisoned(*a, _batches=batches, **k):
            for i, (x, labels) in enumerate(_batches(*a, **k)):
                yield (x.index_fill(1, torch.tensor([0]), float("nan")) if i == 1 else x), labels

        trainer.train_split.batches = poisoned
        try:
            trainer.train()
            passed += skip == 1
        except Diverged as e:
            passed += skip == 0 and "NaN" in str(e) and "\n" not in str(e)
    return 2, passed


def _mutations(data: bytes, rng: random.Random, n: int):
    for _ in range(n):
        b = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0 and b:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 1:
            del b[rng.randrange(len(b) + 1) :]
        elif kind == 2:
            at = rng.randrange(len(b) + 1)
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        else:
            b = bytearray(rng.randbytes(rng.randint(0, 512)))
        yield bytes(b)


def _valid_files() -> dict[str, tuple[bytes, str, object]]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    idx = b"\x00\x00\x08\x03" + b"".join(int(d).to_bytes(4, "big") for d in images.shape) + images.tobytes()
    binarized = io.BytesIO()
    np.savez(binarized, **{s: rng.integers(0, 2, (3, 784), dtype=np.uint8) for s in ("train", "valid", "test")})
    sketches = [np.array([[1, 2, 0], [3, -4, 1]], np.int16), np.array([[0, 5, 1]], np.int16)]
    objects = np.empty(2, dtype=object)
    objects[:] = sketches
    sketch_rnn = io.BytesIO()
    np.savez(sketch_rnn, train=objects, test=objects)
    with tempfile.TemporaryDirectory() as tmp:
        save_stroke_cache(Path(tmp) / "c.npz", {"train": sketches, "test": sketches})
        cache = (Path(tmp) / "c.npz").read_bytes()
    drawing = {"word": "cat", "drawing": [[[0, 10, 20], [0, 5, 0]], [[5, 5], [5, 15]]]}
    ndjson = (json.dumps(drawing) + "\n").encode() * 3
    return {
        "idx": (idx, "images-idx3-ubyte", read_idx),
        "idx.gz": (gzip.compress(idx), "images-idx3-ubyte.gz", read_idx),
        "binarized npz": (binarized.getvalue(), "b.npz", load_binarized_mnist),
        "sketch-rnn npz": (sketch_rnn.getvalue(), "s.npz", read_stroke_file),
        "stroke cache": (cache, "c.npz", read_stroke_file),
        "ndjson": (ndjson, "d.ndjson", read_ndjson),
    }


def fuzz(folder: Path, n: int, rng: random.Random) -> dict[str, tuple[int, int]]:
    """(trials, passed) per reader: each mutated file reads, or gives a one-line DataError naming it."""
    out = {}
    for name, (data, filename, read) in _valid_files().items():
        passed = 0
        for i, mutated in enumerate(_mutations(data, rng, n)):
            path = folder / f"{i}-{filename}"
            path.write_bytes(mutated)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read(path)
                passed += 1
            except DataError as e:
                passed += "\n" not in str(e) and str(path) in str(e)
            except Exception as e:  # counted as a failure, and shown
                print(f"fuzz {name}: {type(e).__name__}: {e}", file=sys.stderr)
            path.unlink()
        out[name] = (n, passed)
    return out


HOSTILE_READ = """
import sys, tracemalloc, warnings
from pvae.errors import DataError
from pvae.kinds.image.mnist import load_binarized_mnist, read_idx
from pvae.kinds.strokes.quickdraw import read_ndjson
reader = {"idx": read_idx, "npz": load_binarized_mnist, "ndjson": read_ndjson}[sys.argv[1]]
tracemalloc.start()
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader(sys.argv[2])
    outcome = "read"
except DataError as e:
    outcome = "refused" if "\\n" not in str(e) else "refused in several lines"
print(outcome, tracemalloc.get_traced_memory()[1] // 1024)
"""


def hostile(folder: Path) -> dict[str, tuple[int, int, float]]:
    """(trials, passed, peak MB allocated while reading, as tracemalloc counts Python and numpy
    buffers) per hostile file: refused in one line, memory bounded."""
    header = b"\x00\x00\x08\x03" + (10**6).to_bytes(4, "big") + (10**6).to_bytes(4, "big") + (1).to_bytes(4, "big")
    files = {
        "idx header: 10^12 items": ("idx", "huge-idx3-ubyte", header + b"\x00" * 100),
        "gzip bomb under an idx header": ("idx", "bomb-idx3-ubyte.gz", gzip.compress(header + b"\x00" * (400 * MB))),
        "npz member: shape (10^12, 784)": ("npz", "huge.npz", _npz_claiming((10**12, 784))),
        "ndjson: one 100 MB line": ("ndjson", "long.ndjson", b'{"word": "' + b"a" * (100 * MB) + b'"}\n'),
    }
    out = {}
    for case, (reader, name, data) in files.items():
        path = folder / name
        path.write_bytes(data)
        result = subprocess.run(
            [sys.executable, "-c", HOSTILE_READ, reader, str(path)], capture_output=True, text=True, timeout=300
        )
        outcome, peak_kb = result.stdout.split() if result.returncode == 0 else ("crashed", "0")
        out[case] = (1, int(outcome == "refused" and int(peak_kb) < 64 * 1024), int(peak_kb) / 1024)
        path.unlink()
    return out


def _npz_claiming(shape: tuple[int, ...]) -> bytes:
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "|u1", "fortran_order": False, "shape": shape})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("train.npy", npy.getvalue() + b"\x00" * 784)
    return out.getvalue()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted_pickles(folder: Path) -> tuple[int, int]:
    """Bare pickles and zip archives whose object arrays carry a payload (protocols 2-5)."""
    trials = passed = 0
    for protocol in (2, 3, 4, 5):
        marker = folder / f"pwned{protocol}"
        bare = folder / f"bare{protocol}.npz"
        bare.write_bytes(pickle.dumps(_Payload(marker), protocol=protocol))
        array = np.empty(2, dtype=object)
        array[0], array[1] = np.zeros((2, 3), np.int16), _Payload(marker)
        npy = io.BytesIO()
        np.lib.format.write_array_header_1_0(npy, {"descr": "|O", "fortran_order": False, "shape": (2,)})
        zipped = folder / f"zipped{protocol}.npz"
        with zipfile.ZipFile(zipped, "w") as z:
            z.writestr("train.npy", npy.getvalue() + pickle.dumps(array, protocol=protocol))
        for path in (bare, zipped):
            trials += 1
            try:
                read_stroke_file(path)
            except DataError as e:
                passed += "\n" not in str(e) and not marker.exists()
    return trials, passed


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10, help="kill -9 moments per run (default 10)")
    p.add_argument("--fuzz", type=int, default=1000, help="mutated files per reader (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stroke_data = folder / "strokes.npz"
        shapes = np.random.default_rng(0)
        sketches = [
            np.column_stack([shapes.integers(-20, 21, (n, 2)), np.r_[np.zeros(n - 1), 1]])
            for n in shapes.integers(5, 20, 600)
        ]
        save_stroke_cache(stroke_data, {"train": sketches[:500], "test": sketches[500:]})
        every = ["--checkpoint-every", "0.01"]  # 0.6 s
        image = ["--data", "digits:6000", "--epochs", "24", "--batch-size", "16", "--latent-dim", "8", "--hidden", "64"]
        sketch = ["--model", "sketch", "--data", f"sketch:{stroke_data}", "--epochs", "60", "--batch-size", "20"]
        sketch += ["--latent-dim", "8", "--enc-hidden", "32", "--dec-hidden", "64", "--mixtures", "3"]
        for name, run_args in (("image", image), ("sketch", sketch)):
            (folder / name).mkdir()
            trials, passed, worst, fallbacks = kill_and_resume([*run_args, *every], args.kills, folder / name, rng)
            case = f"kill -9 + resume, {name} run (checkpoint every 0.6 s; {fallbacks} resumed from the previous one)"
            rows.append((case, trials, passed, f"{worst:.2f} s", ""))
        rows.append(("damaged newest checkpoint", *damaged_checkpoint(folder), "one epoch", ""))
        rows.append(("NaN in a batch (stop; --skip-nonfinite)", *nan_injection(folder), "none", ""))
        for name, (trials, passed) in fuzz(folder, args.fuzz, rng).items():
            rows.append((f"fuzzed {name}", trials, passed, "", ""))
        for case, (trials, passed, peak) in hostile(folder).items():
            rows.append((case, trials, passed, "", f"{peak:.2f} MB"))
        rows.append(("crafted pickles (bare and in a zip, protocols 2-5)", *crafted_pickles(folder), "", ""))
    print("\n".join(markdown(["case", "trials", "passed", "worst loss of work", "peak memory"], rows)))


if __name__ == "__main__":
    main()
