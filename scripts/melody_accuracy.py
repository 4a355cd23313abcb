"""MusicVAE's reconstruction accuracies of trained melody runs, on their own test windows: teacher-forced and
sampled accuracy, both over the note-on steps, the accuracy of always answering "no event", what the code is
worth to the decoder (z read), test ELBO and KL, as ``scripts/music_table.py`` measures them (its ``evaluate``).

    python scripts/melody_accuracy.py RUN [RUN ...] [--test-windows 5000] [--temperature 0.1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pvae import runs

from music_table import MEASURES, evaluate, measured, train_minutes
from tables import markdown, start_script


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, nargs="+", help="melody run folders")
    p.add_argument("--test-windows", type=int, default=5000, help="the first N test windows (default 5000: all)")
    p.add_argument("--temperature", type=float, default=0.1, help="sampled accuracy: the decoder's tau")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    command = start_script()
    rows = []
    for run in args.run:
        step = runs.load_checkpoint(run)["position"]["step"]
        rows.append([run.name, *measured(evaluate(run, args)), step, f"{train_minutes(run):.1f}"])
    columns = ["run", *MEASURES, "steps", "train min"]
    print("\n".join([f"`{command}` (sampled at tau {args.temperature:g})", "", *markdown(columns, rows)]))


if __name__ == "__main__":
    main()
