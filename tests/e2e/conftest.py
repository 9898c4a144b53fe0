"""Browser fixtures: Debian's Chromium through Playwright (never a downloaded browser), with a fake camera that
shows a face made by tests/images.py, converted to Y4M with Debian's ffmpeg."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests import images
from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _require(tool: str, path: str | None) -> str:
    if path and Path(path).exists():
        return path
    message = f"{tool} is not installed (`make system-deps` installs it)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def fake_camera(tmp_path_factory) -> Path:
    ffmpeg = _require("ffmpeg", shutil.which("ffmpeg"))
    folder = tmp_path_factory.mktemp("camera")
    png = folder / "face.png"
    images.face().save(png)
    y4m = folder / "face.y4m"
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-y",
            "-loop",
            "1",
            "-i",
            str(png),
            "-frames:v",
            "10",
            "-pix_fmt",
            "yuv420p",
            str(y4m),
        ],
        check=True,
    )
    return y4m


@pytest.fixture(scope="session")
def browser(fake_camera):
    _require("chromium", CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={fake_camera}",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
