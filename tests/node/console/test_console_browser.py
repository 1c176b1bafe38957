"""The audit console in a real browser: Debian's Chromium driven by Playwright, over real node databases.

The federation (``conftest.demo``) exchanged a few items, asked and got a consent, re-shared
one item and recalled another; its nodes are stopped. Each test loads pages of a console
process (``intelshare console``) and checks what a person would look at.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, serve
from console_scenario import MEMBERS, Scenario, db_path

from node.harness import LocalFederation
from protocol.classification import Band

pytestmark = pytest.mark.integration

PageAt = Callable[..., Any]


def rows(fed: LocalFederation, member: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db_path(fed, member)}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql, args))


def shown_seqs(page: Any) -> list[int]:
    return [int(r.get_attribute("id")[1:]) for r in page.locator("table.log tbody tr").all()]


def test_federation_page_shows_each_logs_state_and_witnesses(
    fed: LocalFederation, console_url: str, page_at: PageAt, screenshots: Path
) -> None:
    page = page_at()
    page.goto(console_url + "/")
    for member in MEMBERS:
        assert page.locator(f"#state-{member}").inner_text().strip() == "✔ verifies"
        assert page.locator(f"#node-{member} .witnesses li").count() >= 1  # someone co-signed its checkpoint
    for member in ("KG", "HU", "TM"):  # never started: no log to check
        assert page.locator(f"#state-{member}").inner_text().strip() == "– not checked"
    assert page.locator("#node-HU").get_by_text("observer").count() == 1
    page.screenshot(path=str(screenshots / "federation.png"), full_page=True)


def test_national_markings_render_as_written(
    fed: LocalFederation, scenario: Scenario, console_url: str, page_at: PageAt
) -> None:
    page = page_at()
    page.goto(f"{console_url}/items/{scenario.reshared}")
    for member, band in (("KZ", Band.SECRET), ("TR", Band.SECRET), ("AZ", Band.SECRET)):
        marking = fed.roster.marking(member, band)
        assert marking in ("СЕКРЕТНО", "GİZLİ", "TAM MƏXFİ")
        cell = page.locator(f"table.holders tr[data-member={member}] .marking")
        assert cell.inner_text() == marking  # Cyrillic, Turkish İ, Azerbaijani Ə: as the roster spells them


def test_filtering_a_nodes_log(fed: LocalFederation, scenario: Scenario, console_url: str, page_at: PageAt) -> None:
    page = page_at()
    page.goto(f"{console_url}/nodes/TR/log")
    page.get_by_label("Item", exact=True).fill(scenario.reshared)
    page.get_by_label("Event", exact=True).select_option("RESHARE")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    assert "event=RESHARE" in page.url
    expected = rows(fed, "TR", "SELECT seq FROM audit_log WHERE item_id = ? AND event = 'RESHARE'", scenario.reshared)
    assert len(expected) == 2  # refused without consent, then sent with KZ's grant
    assert shown_seqs(page) == [seq for (seq,) in expected]
    assert page.locator("table.log tbody td.nowrap", has_text="RESHARE").count() == 2


def test_trace_shows_every_holder(
    fed: LocalFederation, scenario: Scenario, console_url: str, page_at: PageAt, screenshots: Path
) -> None:
    page = page_at()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(console_url + "/")
    page.get_by_label("Trace an item").fill(scenario.reshared[:14])  # a prefix is enough
    page.get_by_label("Trace an item").press("Enter")
    page.wait_for_url(f"**/items/{scenario.reshared}")
    holders = {
        member
        for member in MEMBERS
        for table in ("original_items", "inbox_items")
        if rows(fed, member, f"SELECT 1 FROM {table} WHERE item_id = ?", scenario.reshared)
    }
    assert holders == {"KZ", "TR", "AZ"}
    drawn = {
        b.get_attribute("data-member") for b in page.locator("svg.graph a.box.originator, svg.graph a.box.holder").all()
    }
    assert drawn == holders
    listed = {r.get_attribute("data-member") for r in page.locator("table.holders tbody tr").all()}
    assert listed == holders
    refused = page.locator("svg.graph a.box.refused-only").get_attribute("data-member")
    assert refused == "UZ"  # AZ was refused passing it on: drawn, dashed, not a holder
    assert "grant" in page.locator('svg.graph g.edge[data-from="TR"][data-to="AZ"]').text_content()
    assert requested
    assert all(url.startswith(console_url) for url in requested)  # nothing from anywhere else
    page.screenshot(path=str(screenshots / "trace.png"), full_page=True)
    if os.environ.get("INTELSHARE_UPDATE_EXAMPLES"):
        shutil.copyfile(screenshots / "trace.png", REPO / "examples" / "console.png")


def test_keyboard_reaches_the_filter_form_and_the_links(scenario: Scenario, console_url: str, page_at: PageAt) -> None:
    page = page_at()
    page.goto(f"{console_url}/nodes/TR/log")
    reached: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                "(() => { const e = document.activeElement; return e.id || e.getAttribute('href') || e.tagName; })()"
            )
        )
    assert reached[0] == "#content"  # the skip link comes first
    assert "f-item" in reached
    assert "f-event" in reached
    assert any(r.startswith("/items/") for r in reached)  # an entry's trace link
    assert any("/envelopes/" in r for r in reached)  # an entry's peer link
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible


def test_narrow_window(console_url: str, page_at: PageAt, screenshots: Path, scenario: Scenario) -> None:
    page = page_at(width=400, height=800)
    page.goto(console_url + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400  # no sideways scrolling of the page
    page.screenshot(path=str(screenshots / "federation-400px.png"), full_page=True)
    page.goto(f"{console_url}/items/{scenario.reshared}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    page.screenshot(path=str(screenshots / "trace-400px.png"), full_page=True)


def _hashes(fed: LocalFederation) -> dict[str, str]:
    """The database files and their write-ahead logs (not ``-shm``: SQLite's shared index, rebuilt from them)."""
    out = {}
    for member in MEMBERS:
        for path in (db_path(fed, member), db_path(fed, member).with_suffix(".db-wal")):
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_browsing_leaves_the_databases_byte_identical(
    fed: LocalFederation, scenario: Scenario, console_url: str, page_at: PageAt
) -> None:
    before = _hashes(fed)
    page = page_at()
    page.goto(console_url + "/")
    with page.expect_navigation():  # posted, then sent back to the federation page
        page.get_by_role("button", name="Verify every log again").click()
    assert page.url == console_url + "/"
    for member in MEMBERS:
        page.goto(f"{console_url}/nodes/{member}/log")
        for href in [link.get_attribute("href") for link in page.locator("a.peer").all()[:2]]:
            page.goto(console_url + href)  # the same envelope in the peer's log
    for item in (scenario.reshared, scenario.recalled):
        page.goto(f"{console_url}/items/{item}")
    page.goto(console_url + "/reconciliation")
    assert _hashes(fed) == before


def _tamper(copy: LocalFederation, member: str, sql: str, *args: object) -> None:
    with sqlite3.connect(db_path(copy, member)) as conn:
        assert conn.execute(sql, args).rowcount == 1


def test_an_edited_entry_marks_its_node_broken_at_that_entry(
    tampered_copy: LocalFederation, scenario: Scenario, page_at: PageAt, screenshots: Path
) -> None:
    (seq,) = rows(
        tampered_copy,
        "TR",
        "SELECT seq FROM audit_log WHERE envelope_id = ? AND event = 'INGRESS'",
        scenario.first_envelope,
    )[0]
    _tamper(tampered_copy, "TR", "UPDATE audit_log SET allowed = 0, reason = 'BAND_ABOVE_CEILING' WHERE seq = ?", seq)
    with serve(tampered_copy.root) as url:
        page = page_at()
        page.goto(url + "/")
        assert page.locator("#state-TR").inner_text().strip() == f"✘ broken at entry {seq}"
        assert page.locator("#state-KZ").inner_text().strip() == "✔ verifies"
        page.screenshot(path=str(screenshots / "federation-broken.png"), full_page=True)
        with page.expect_navigation():
            page.get_by_role("link", name=f"show entry {seq}").first.click()
        entry = page.locator(f"#e{seq}")
        assert "failing" in (entry.get_attribute("class") or "")
        assert "does not verify" in entry.inner_text()
        assert page.locator("tr.failing").count() == 1  # only the edited entry


def test_a_deleted_ingress_appears_as_a_reconciliation_mismatch(
    tampered_copy: LocalFederation, scenario: Scenario, console_url: str, page_at: PageAt, screenshots: Path
) -> None:
    page = page_at()
    page.goto(console_url + "/reconciliation")
    assert page.locator("#not_received").count() == 0
    _tamper(
        tampered_copy,
        "AZ",
        "DELETE FROM audit_log WHERE envelope_id = ? AND event = 'INGRESS'",
        scenario.reshare_envelope,
    )
    with serve(tampered_copy.root) as url:
        page.goto(url + "/")
        assert page.get_by_role("link", name="1 not_received").count() == 1
        page.goto(url + "/reconciliation")
        section = page.locator("section", has=page.locator("#not_received"))
        assert scenario.reshare_envelope in section.inner_text()
        sides = section.locator("tbody tr").all_inner_texts()
        assert len(sides) == 1
        assert sides[0].startswith("TR")
        assert "DELIVERY_CONFIRMED" in sides[0]
        page.screenshot(path=str(screenshots / "reconciliation.png"), full_page=True)
