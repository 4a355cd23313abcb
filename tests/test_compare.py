"""``pvae compare`` on three tiny runs (the options that differ, the final numbers, the notes on
what a run lacks, three formats, one figure), its one-line refusals, and ``--tensorboard``: event
files under RUN/tb/ read back with TensorBoard's own reader, appended on resume, and a one-line
refusal without the package."""

from __future__ import annotations

import builtins
import csv
import io
import json

import pytest

from pvae import reporting
from pvae.cli import main
from pvae.compare import MISSING, compare_runs, format_table

TINY = ["--data", "digits:48", "--hidden", "8", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three runs of 6 steps (2 epochs): latent 2 (meanfield), latent 3 (meanfield), latent 2 (iwae),
    the first with bounds and inspect, the second with inspect only."""
    root = tmp_path_factory.mktemp("compare")
    flags = {"a": ["--latent-dim", "2"], "b": ["--latent-dim", "3"], "c": ["--latent-dim", "2", "--objective", "iwae"]}
    for name, extra in flags.items():
        assert main(["train", *TINY, *extra, "--steps", "6", "--out", str(root / name)]) == 0
    assert main(["bounds", str(root / "a"), "--k", "1", "5", "--limit", "8", "--no-progress"]) == 0
    for name in ("a", "b"):
        assert main(["inspect", str(root / name), "--limit", "16"]) == 0
    return root


def test_the_table_holds_the_differing_options_and_each_runs_numbers(three):
    comparison = compare_runs([three / n for n in "abc"])
    columns = comparison.columns
    assert columns == ["run", "latent_dim", "objective", "test ELBO", "KL", "L_k", "active units", "steps", "minutes"]
    rows = {row[0]: dict(zip(columns, row)) for row in comparison.rows}
    assert [rows[n]["latent_dim"] for n in "abc"] == ["2", "3", "2"]
    assert [rows[n]["objective"] for n in "abc"] == ["meanfield", "meanfield", "iwae"]
    for name in "abc":
        metrics = list(csv.DictReader(open(three / name / "metrics.csv")))
        assert rows[name]["test ELBO"] == f"{float(metrics[-1]['test_elbo']):.2f}"
        assert rows[name]["steps"] == "6"
    bounds = json.loads(next((three / "a" / "bounds").glob("*/bounds.json")).read_text())
    assert rows["a"]["L_k"] == f"{bounds['bounds']['5']['mean']:.2f} (k=5)"
    inspected = json.loads(next((three / "b" / "inspect").glob("*/inspect.json")).read_text())
    assert rows["b"]["active units"] == f"{inspected['active_units']} of 3"
    assert rows["b"]["L_k"] == rows["c"]["L_k"] == rows["c"]["active units"] == MISSING
    assert comparison.notes == [
        "- L_k: not computed (pvae bounds RUN)",
        "- active units: not computed (pvae inspect RUN)",
    ]


def test_the_three_formats_and_the_figure(three, tmp_path, capsys):
    runs_ = [str(three / n) for n in "abc"]
    figure, table = tmp_path / "curves.png", tmp_path / "table.csv"
    assert main(["compare", *runs_, "--csv", str(table), "--figure", str(figure)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["run", "latent_dim", "objective", "test", "ELBO", "KL", "L_k", "active",
                                           "units", "steps", "minutes"]  # fmt: skip
    assert figure.stat().st_size > 0 and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    parsed = list(csv.reader(io.StringIO(table.read_text())))
    assert parsed[0][:3] == ["run", "latent_dim", "objective"] and [r[0] for r in parsed[1:]] == ["a", "b", "c"]
    assert len({len(r) for r in parsed}) == 1  # "1.23 (k=5)" and the like stay one cell each
    assert main(["compare", *runs_, "--markdown", "--figure", str(figure)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | latent_dim | objective |") and lines[1].startswith("|---|")
    assert sum(line.startswith("| ") for line in lines) == 4


def test_runs_of_two_kinds_or_a_folder_without_a_run_are_one_line(three, tmp_path, capsys):
    sketch = tmp_path / "sketch"
    args = ["train", "--model", "sketch", "--guide", "rnn", "--data", "glyphs", "--steps", "1", "--no-progress"]
    args += ["--latent-dim", "2", "--dec-hidden", "8", "--enc-hidden", "8", "--mixtures", "2", "--batch-size", "4"]
    assert main([*args, "--out", str(sketch)]) == 0
    capsys.readouterr()
    figure = str(tmp_path / "c.png")
    assert main(["compare", str(three / "a"), str(sketch), "--figure", figure]) == 2
    err = capsys.readouterr().err
    assert "holds image data" in err and "holds strokes data: compare runs of one data kind" in err
    assert err.count("\n") == 1
    assert main(["compare", str(three / "a"), str(tmp_path / "nothing"), "--figure", figure]) == 2
    err = capsys.readouterr().err
    assert "nothing" in err and err.count("\n") == 1
    assert main(["compare", str(three / "a"), "--figure", figure]) == 2
    assert "at least two run folders" in capsys.readouterr().err


def test_format_table_refuses_an_unknown_style(three):
    with pytest.raises(ValueError, match="style must be one of text, markdown, csv"):
        format_table(compare_runs([three / "a", three / "b"]), "html")


def test_tensorboard_writes_scalars_and_figures_and_appends_on_resume(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", *TINY, "--latent-dim", "2", "--steps", "3", "--tensorboard", "--out", str(run)]) == 0
    assert main(["train", "--resume", "--out", str(run), "--steps", "6", "--no-progress"]) == 0
    events = EventAccumulator(str(run / reporting.TENSORBOARD), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "test/elbo", "test/kl", "epoch/train_loss"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]  # no step twice
    metrics = list(csv.DictReader(open(run / "metrics.csv")))
    logged = {e.step: e.value for e in events.Scalars("test/elbo")}
    assert logged == pytest.approx({int(r["step"]): float(r["test_elbo"]) for r in metrics}, abs=1e-4)
    assert "figures/loss" in tags["images"] and events.Images("figures/loss")[-1].width > 0


def test_tensorboard_without_the_package_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    run = tmp_path / "run"
    assert main(["train", *TINY, "--steps", "1", "--tensorboard", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "--tensorboard needs the tensorboard package: pip install 'pvae[tensorboard]'" in err
    assert err.count("\n") == 1 and not run.exists()
