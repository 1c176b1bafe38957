"""Fixtures of the console's tests: one demo-like federation for the whole folder, the console, Chromium.

``fed`` runs the scenario (``console_scenario``) once on real node processes and stops
them: the console then reads databases nobody writes, so a test can hash them. Tests
that tamper with a log do it on a copy (``tampered_copy``) and serve that copy with a
console of their own. Browser tests drive Debian's Chromium through Playwright; they
skip only when there is no ``chromium`` binary (``.ci/run`` installs it).
Screenshots go to ``$INTELSHARE_SCREENSHOTS`` if set, else to a temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from console_scenario import MEMBERS, Scenario, often_witnessed, play

from node.harness import LocalFederation

REPO = Path(__file__).resolve().parents[3]
FEDERATION_TOML = REPO / "examples" / "federation.toml"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
_ADDRESS = re.compile(r"on (http://\S+/) ")


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalFederation, Scenario]:
    """The federation after the scenario, its nodes stopped."""
    fed = LocalFederation.create(FEDERATION_TOML, tmp_path_factory.mktemp("console") / "ots")
    often_witnessed(fed)
    with fed.running(list(MEMBERS)):
        scenario = play(fed)
    return fed, scenario


@pytest.fixture(scope="session")
def fed(demo: tuple[LocalFederation, Scenario]) -> LocalFederation:
    return demo[0]


@pytest.fixture(scope="session")
def scenario(demo: tuple[LocalFederation, Scenario]) -> Scenario:
    return demo[1]


@contextmanager
def serve(root: Path, *args: str, timeout: float = 30.0) -> Iterator[str]:
    """``intelshare console --dir root --port 0 …`` as a process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "console", "--dir", str(root), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not (found := _ADDRESS.search(line)):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise RuntimeError(f"the console exited with {process.returncode}: {process.stderr.read()}")
        if not found:
            raise TimeoutError("the console did not say where it listens")
        yield found.group(1).rstrip("/")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def console_url(fed: LocalFederation) -> Iterator[str]:
    """The console over the untouched federation."""
    with serve(fed.root) as url:
        yield url


@pytest.fixture
def tampered_copy(fed: LocalFederation, tmp_path: Path) -> LocalFederation:
    """A copy of the federation (databases, write-ahead logs and all) for a test to damage."""
    root = tmp_path / "copy"
    shutil.copytree(fed.root, root, ignore=shutil.ignore_patterns("*.sock"))
    return LocalFederation(root)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, with the flags a closed network needs.

    Module-scoped: Playwright's synchronous API holds an event loop in this thread while
    it runs, and later tests' ``asyncio.run`` must not find one.
    """
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the tests write their screenshots to."""
    named = os.environ.get("INTELSHARE_SCREENSHOTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page_at(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open a new page of the given size; every page opened is closed after the test."""
    opened: list[Any] = []

    def open_page(width: int = 1280, height: int = 800) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
        opened.append(context)
        return context.new_page()

    yield open_page
    for context in opened:
        context.close()
