"""The ``pvae`` command's own behaviour: a mistyped flag names the subcommand and the nearest flag,
generation commands check the run before their own arguments, and a command leaves the process's
warning format and signal handlers as it found them."""

from __future__ import annotations

import signal
import warnings

import pytest

from pvae.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--latnet-dim", "4"],
            "pvae train: error: unrecognized arguments: --latnet-dim 4 (did you mean --latent-dim?)",
        ),
        (["train", "--objektive=iwae"], "unrecognized arguments: --objektive=iwae (did you mean --objective?)"),
        (["bounds", "RUN", "--kk", "5"], "pvae bounds: error: unrecognized arguments: --kk 5 (did you mean --k?)"),
        (["train", "stray"], "pvae train: error: unrecognized arguments: stray (see pvae train --help)"),
    ],
)
def test_a_mistyped_flag_names_the_subcommand_and_the_nearest_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and err.count("\n") == 1, err


def test_style_on_an_image_run_says_the_run_does_not_qualify_before_asking_for_a_font(tmp_path, capsys, one_thread):
    run = tmp_path / "run"
    assert (
        main(["train", "--data", "digits:32", "--steps", "1", "--hidden", "8", "--out", str(run), "--no-progress"]) == 0
    )
    capsys.readouterr()
    assert main(["style", str(run)]) == 2
    err = capsys.readouterr().err
    assert "pvae style applies to runs of strokes or svg data; this run's data are image" in err and "--font" not in err


def test_a_command_leaves_the_warning_format_and_sigterm_handler_as_it_found_them(tmp_path, capsys, one_thread):
    """A process that runs ``pvae sample`` and then warns by itself does not say ``pvae sample:``."""
    before = warnings.formatwarning, signal.getsignal(signal.SIGTERM)
    run = tmp_path / "run"
    assert (
        main(["train", "--data", "digits:32", "--steps", "1", "--hidden", "8", "--out", str(run), "--no-progress"]) == 0
    )
    assert main(["sample", str(run), "-n", "2"]) == 0
    assert (warnings.formatwarning, signal.getsignal(signal.SIGTERM)) == before
    text = warnings.formatwarning("late", UserWarning, "x.py", 1)
    assert "pvae" not in text and "late" in text
