"""``pvae report`` and the report training writes: one static page per run (``RUN/report.html``)
that parses, references only files inside the run, escapes every text it shows, and opens in a
headless Chromium without a console error, a broken image or an empty inline SVG."""

from __future__ import annotations

import json
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from conftest import write_abc_tunes

import pvae.train
from pvae.cli import main
from pvae.report import REPORT, write_report

pytestmark = pytest.mark.usefixtures("one_thread")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
IMAGE_TINY = ["--data", "digits:64", "--batch-size", "32", "--latent-dim", "2", "--hidden", "8"]
RUNS = ("image", "raster", "sketch", "melody")


def _train(run: Path, *flags: str) -> Path:
    assert main(["train", *flags, "--steps", "2", "--out", str(run), "--no-progress"]) == 0
    assert (run / REPORT).is_file()  # training writes the report
    return run


def _reported(run: Path) -> Path:
    assert main(["report", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    run = _train(tmp_path_factory.mktemp("image") / "run", *IMAGE_TINY)
    assert main(["bounds", str(run), "--k", "1", "5", "--limit", "8", "--no-progress"]) == 0
    assert main(["inspect", str(run), "--limit", "16"]) == 0
    assert main(["sample", str(run), "-n", "4"]) == 0
    return _reported(run)


@pytest.fixture(scope="module")
def raster_run(tmp_path_factory):
    flags = ["--model", "strokes-raster", "--guide", "delta", "--data", "digits:64", "--segments", "3"]
    run = _train(tmp_path_factory.mktemp("raster") / "run", *flags, "--latent-dim", "4", "--hidden", "16")
    assert main(["vectorise", str(run), "-n", "2"]) == 0
    return _reported(run)


@pytest.fixture(scope="module")
def sketch_run(tmp_path_factory, stroke_shapes):
    folder = tmp_path_factory.mktemp("sketch")
    lines = []
    for sketch in stroke_shapes(16):
        points = np.cumsum(sketch[:, :2], 0).astype(int)
        lines.append(json.dumps({"word": "shape", "drawing": [[points[:, 0].tolist(), points[:, 1].tolist()]]}))
    (folder / "shapes.ndjson").write_text("\n".join(lines) + "\n")
    flags = ["--model", "sketch", "--data", f"quickdraw:{folder / 'shapes.ndjson'}", "--batch-size", "8"]
    sizes = ["--latent-dim", "2", "--enc-hidden", "4", "--dec-hidden", "8", "--mixtures", "2"]
    run = _train(folder / "run", *flags, *sizes)
    assert main(["sample", str(run), "-n", "2"]) == 0
    return _reported(run)


@pytest.fixture(scope="module")
def melody_run(tmp_path_factory):
    pytest.importorskip("music21", reason="melody runs read ABC through music21 (the music extra)")
    folder = tmp_path_factory.mktemp("melody")
    tunes = write_abc_tunes(folder / "tunes.abc")
    flags = ["--model", "melody", "--data", f"abc:{tunes}", "--bars", "2", "--batch-size", "4"]
    run = _train(folder / "run", *flags, "--latent-dim", "3", "--enc-hidden", "8", "--dec-hidden", "8")
    assert main(["sample", str(run), "-n", "2"]) == 0
    return _reported(run)


class _Page(HTMLParser):
    """The tags of a page (name, attributes), its text, and where its tags do not nest."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.errors: list[str] = []
        self.feed(text)
        self.close()
        self.errors += [f"<{tag}> not closed" for tag in self.open]

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.errors.append(f"</{tag}> closes {self.open[-1:]}")

    def handle_data(self, data):
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def _page(run: Path) -> _Page:
    page = _Page((run / REPORT).read_text(encoding="utf-8"))
    assert page.errors == []
    return page


def _references(page: _Page) -> list[str]:
    return [v for _, attrs in page.tags for k, v in attrs.items() if k in ("src", "href") and v is not None]


@pytest.mark.parametrize("name", RUNS)
def test_the_report_parses_and_references_only_files_of_the_run(name, request):
    run = request.getfixturevalue(f"{name}_run")
    page = _page(run)
    assert not page.named("script") and not page.named("link") and not page.named("iframe")
    inside = run.resolve()
    for reference in _references(page):
        if reference.startswith(("#", "data:image/")):
            continue
        assert "://" not in reference and not reference.startswith("/"), reference
        path = (run / unquote(reference)).resolve()
        assert path.is_file() and inside in path.parents, reference
    assert any(attrs.get("src", "").startswith("data:image/svg+xml;base64,") for attrs in page.named("img"))
    text = " ".join(page.text)
    assert "train.objective" in text and "model.name" in text  # the config's table


def _srcs(page: _Page, tag: str = "img") -> list[str]:
    return [unquote(attrs["src"]) for attrs in page.named(tag) if not attrs["src"].startswith("data:")]


def test_each_kind_shows_its_outputs(image_run, raster_run, sketch_run, melody_run):
    image = _page(image_run)
    shown = _srcs(image)
    assert "figures/loss.png" in shown and any(s.startswith("bounds/") and s.endswith("bounds.png") for s in shown)
    assert any(s.startswith("inspect/") for s in shown) and any(s.startswith("sample/") for s in shown)
    assert "nll" in image.text and "active_units" in image.text  # bounds.json and inspect.json as tables
    assert len(image.named("svg")) == 0
    raster = _page(raster_run)
    assert len(raster.named("svg")) == 2 and len(raster.named("path")) >= 2  # the vectorised digits, inline
    sketch = _page(sketch_run)
    assert len(sketch.named("svg")) >= 3 and "figures/prior_samples.png" not in _srcs(sketch)  # its SVG instead
    melody = _page(melody_run)
    audio = melody.named("audio")
    assert audio and all("controls" in attrs for attrs in audio)
    assert [Path(s).name for s in _srcs(melody, "audio")] == ["samples.wav"]
    assert any(s.endswith("piano_roll.png") for s in _srcs(melody))
    assert sum(unquote(a["href"]).endswith(".mid") for a in melody.named("a")) == 2


def test_text_from_files_is_escaped_and_svg_is_cleaned(image_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "metrics.csv"):
        shutil.copy(image_run / name, run / name)
    config = json.loads((run / "config.json").read_text())
    config["train"]["data"] = "<script>alert(1)</script>"
    config["model"]["name"] = '"><img src=x onerror=alert(1)>'
    (run / "config.json").write_text(json.dumps(config))
    folder = run / "sample" / "n=1,seed=0"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"<b>key</b>": "<i>value</i>"}))
    (folder / "<u>x\"'&.mid").write_bytes(b"MThd")
    (folder / "drawing.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="20" height="20">'
        '<script>alert(1)</script><foreignObject><p>x</p></foreignObject><image xlink:href="http://example.com/a.png"/>'
        '<rect id="r" width="10" height="10" onload="alert(1)" fill="url(http://example.com/#p)"/>'
        '<use xlink:href="#r" x="5"/><use href="http://example.com/b.svg#r"/><title>&lt;b&gt;t</title></svg>'
    )
    page = _Page(write_report(run).read_text())
    assert page.errors == []
    tags = {name for name, _ in page.tags}
    assert not tags & {"script", "b", "i", "u", "foreignobject", "image"}
    assert len(page.named("img")) == 1  # the curves alone: the model's name did not open an <img>
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)
    assert [a.get("href") for a in page.named("use")] == ["#s1-r", None] and page.named("rect")[0]["id"] == "s1-r"
    assert "fill" not in page.named("rect")[0]  # an external url() is dropped
    text = "".join(page.text)
    for shown in ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "<b>key</b>", "<i>value</i>", "<b>t"):
        assert shown in text
    assert "<u>x\"'&.mid" in text and [unquote(a["href"]) for a in page.named("a")][-1].endswith("<u>x\"'&.mid")


def test_report_takes_several_runs_and_refuses_a_bad_one_in_one_line(image_run, raster_run, tmp_path, capsys):
    assert main(["report", str(image_run), str(raster_run)]) == 0
    assert capsys.readouterr().out.count(REPORT) == 2
    before = (image_run / REPORT).stat().st_mtime_ns
    assert main(["report", str(image_run), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pvae report: error: ") and "not a run folder" in err and err.count("\n") == 1, err
    assert (image_run / REPORT).stat().st_mtime_ns == before  # checked before any page is written


def test_a_report_that_fails_is_a_warning_and_the_run_is_kept(tmp_path, capsys, monkeypatch):
    def fail(run):
        raise OSError("disk full")

    monkeypatch.setattr(pvae.train, "write_report", fail)
    run = tmp_path / "run"
    assert main(["train", *IMAGE_TINY, "--steps", "1", "--out", str(run), "--no-progress"]) == 0
    assert (run / "checkpoint.pt").is_file() and not (run / REPORT).exists()
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1 and REPORT in warned[0] and "disk full" in warned[0], warned


# --- a real browser -----------------------------------------------------------------------------


def chromium(window: tuple[int, int] = (1200, 900)):
    """A headless Chromium driven by selenium (console messages logged), or a skip saying what is missing."""
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.skip(f"{path} is not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))


BROKEN_IMAGES = "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
EMPTY_SVGS = """return [...document.querySelectorAll('svg')].filter(s => !s.parentElement.closest('svg'))
    .filter(s => { const r = s.getBoundingClientRect(); return !(r.width > 0 && r.height > 0); }).length"""
AUDIO_STATES = "return [...document.querySelectorAll('audio')].map(a => [a.readyState, a.error && a.error.code])"


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def open_page(driver, page: Path) -> None:
    """Open ``page`` and wait (at most 5 s) until its audio elements have read their metadata."""
    driver.get(page.resolve().as_uri())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(s[0] < 1 and s[1] is None for s in driver.execute_script(AUDIO_STATES)):
        time.sleep(0.05)


@pytest.mark.parametrize("name", RUNS)
def test_the_report_renders_in_a_browser(name, request, browser, tmp_path):
    run = request.getfixturevalue(f"{name}_run")
    open_page(browser, run / REPORT)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert browser.execute_script("return document.images.length") >= 2
    assert browser.execute_script(BROKEN_IMAGES) == []
    assert browser.execute_script(EMPTY_SVGS) == 0
    assert all(state[0] >= 1 for state in browser.execute_script(AUDIO_STATES))  # every WAV decodes
    assert browser.save_screenshot(str(tmp_path / f"{name}.png"))
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
