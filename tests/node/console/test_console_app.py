"""The console's application in-process (Starlette's test client), over the same federation as the browser tests.

Who may look (loopback names, the token, auditors' credentials), what it never touches
(private keys, anything outside its own pages), and the log pages' keyset walk and
links between the two sides of a transfer.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_scenario import MEMBERS, Scenario, db_path
from starlette.testclient import TestClient
from typer.testing import CliRunner

from node.audit.sources import federation_view
from node.cli import app as cli
from node.config import load_node_config
from node.console import Access, create_app
from node.console.checks import Checks
from node.console.logpage import parse_query, read_page
from node.harness import LocalFederation

pytestmark = pytest.mark.integration

TOKEN = "a-console-token-for-the-tests"
LOOPBACK = ["127.0.0.1", "localhost", "::1", "[::1]"]


def client(fed: LocalFederation, **kwargs: object) -> TestClient:
    return TestClient(create_app(federation_view(fed.root), **kwargs), base_url="http://127.0.0.1")  # type: ignore[arg-type]


def seqs(fed: LocalFederation, member: str, sql: str, *args: object) -> list[int]:
    with sqlite3.connect(f"file:{db_path(fed, member)}?mode=ro", uri=True) as conn:
        return [int(seq) for (seq,) in conn.execute(sql, args)]


# --------------------------------------------------------------------------- access


def test_loopback_console_refuses_another_host_name(fed: LocalFederation) -> None:
    """A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) reads nothing."""
    with client(fed, hosts=LOOPBACK) as http:
        assert http.get("/").status_code == 200
        assert http.get("/", headers={"host": "attacker.example"}).status_code == 400


def test_token_is_required_on_every_request(fed: LocalFederation) -> None:
    with client(fed, access=Access(token=TOKEN)) as http:
        refused = http.get("/nodes/TR/log")
        assert refused.status_code == 401
        assert 'name="token"' in refused.text  # the sign-in form, not the log
        assert "audit_log" not in refused.text
        assert http.get("/", headers={"authorization": f"Bearer {TOKEN}x"}).status_code == 401
        assert http.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
        assert http.get("/", headers={"authorization": f"Basic {basic}"}).status_code == 200


def test_signing_in_sets_a_session_cookie_that_is_not_the_token(fed: LocalFederation) -> None:
    with client(fed, access=Access(token=TOKEN)) as http:
        wrong = http.post("/login", data={"token": "not-the-token-at-all", "next": "/"}, follow_redirects=False)
        assert wrong.status_code == 401
        signed = http.post("/login", data={"token": TOKEN, "next": "/nodes/TR/log"}, follow_redirects=False)
        assert signed.status_code == 303
        assert signed.headers["location"] == "/nodes/TR/log"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert TOKEN not in cookie
        assert http.get("/nodes/TR/log").status_code == 200  # the client sends the cookie back


def test_sign_in_never_redirects_to_another_site(fed: LocalFederation) -> None:
    with client(fed, access=Access(token=TOKEN)) as http:
        signed = http.post("/login", data={"token": TOKEN, "next": "//attacker.example/"}, follow_redirects=False)
        assert signed.headers["location"] == "/"


def test_auditors_sign_in_with_their_own_credentials(fed: LocalFederation) -> None:
    officers = [load_node_config(fed.nodes[m].config_path).officers for m in fed.nodes]
    node_dir = fed.nodes["TR"].config_path.parent
    auditor = (node_dir / "officers" / "auditor.token").read_text().strip()
    duty = (node_dir / "officers" / "duty.token").read_text().strip()

    def basic(name: str, token: str) -> dict[str, str]:
        return {"authorization": "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()}

    with client(fed, access=Access(auditors=officers)) as http:
        assert http.get("/", headers=basic("auditor", auditor)).status_code == 200
        assert http.get("/", headers=basic("duty", duty)).status_code == 401  # an officer, not an auditor
        assert http.get("/", headers=basic("auditor", duty)).status_code == 401


def test_the_command_refuses_another_address_without_a_credential(fed: LocalFederation) -> None:
    done = CliRunner().invoke(cli, ["console", "--dir", str(fed.root), "--host", "0.0.0.0"])
    assert done.exit_code == 2
    assert "--token" in done.output
    short = CliRunner().invoke(cli, ["console", "--dir", str(fed.root), "--host", "0.0.0.0", "--token", "short"])
    assert short.exit_code == 2
    assert "16 characters" in short.output


# --------------------------------------------------------------------------- what it never touches


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """Every file the process opens while the test runs (an audit hook cannot be removed: it stops recording)."""
    seen: list[str] = []
    active = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if active[0] and event in ("open", "sqlite3.connect") and args and isinstance(args[0], str | Path):
            seen.append(str(args[0]))

    sys.addaudithook(hook)
    yield seen
    active[0] = False


def test_the_console_opens_no_private_key(fed: LocalFederation, scenario: Scenario, opened: list[str]) -> None:
    secrets = {str(fed.root / "ca.key"), str(fed.root / "secretariat.key")}
    for node in fed.nodes.values():
        keys = load_node_config(node.config_path).keys
        secrets |= {str(keys.signing), str(keys.hpke), str(keys.tls_key), str(keys.at_rest)}
        secrets |= {str(p) for p in (node.config_path.parent / "officers").glob("*.token")}
    with client(fed) as http:
        for path in ("/", "/reconciliation", f"/items/{scenario.reshared}", f"/items/{scenario.recalled}"):
            assert http.get(path).status_code == 200
        for member in MEMBERS:
            assert http.get(f"/nodes/{member}/log").status_code == 200
    assert any(p.endswith("roster.json") for p in opened)  # the hook saw the console's reads
    assert secrets.isdisjoint(opened)
    databases = [p for p in opened if "node.db" in p]
    assert databases
    assert all("mode=ro" in p for p in databases)  # every database opened read-only


def test_pages_load_nothing_from_elsewhere(fed: LocalFederation, scenario: Scenario) -> None:
    with client(fed) as http:
        page = http.get(f"/items/{scenario.reshared}")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert re.findall(r'(?:src|href|action)="(?:https?:)?//', page.text) == []
    assert "<script" not in page.text


# --------------------------------------------------------------------------- log pages


def test_keyset_pages_walk_the_whole_log_both_ways(fed: LocalFederation) -> None:
    every = seqs(fed, "TR", "SELECT seq FROM audit_log ORDER BY seq")
    view = federation_view(fed.root)
    with view.sources["TR"].session() as session:
        forward: list[int] = []
        page = read_page(session, parse_query({}), limit=3)
        while True:
            forward += [r.seq for r in page.rows]
            if page.next_after is None:
                break
            page = read_page(session, parse_query({"after": str(page.next_after)}), limit=3)
        backward: list[int] = []
        page = read_page(session, parse_query({"before": str(page.head + 1)}), limit=3)
        while True:
            backward = [r.seq for r in page.rows] + backward
            if page.previous_before is None:
                break
            page = read_page(session, parse_query({"before": str(page.previous_before)}), limit=3)
    assert forward == every
    assert backward == every


def test_an_entry_links_to_the_same_envelope_in_the_peers_log(fed: LocalFederation, scenario: Scenario) -> None:
    (ingress,) = seqs(
        fed, "AZ", "SELECT seq FROM audit_log WHERE envelope_id = ? AND event = 'INGRESS'", scenario.reshare_envelope
    )
    with client(fed) as http:
        log = http.get("/nodes/TR/log", params={"item": scenario.reshared, "event": "RESHARE"}).text
        (link,) = [h for h in re.findall(r'href="([^"]+)"', log) if scenario.reshare_envelope in h]
        found = http.get(link.replace("&amp;", "&"), follow_redirects=False)
    assert found.status_code == 303
    assert found.headers["location"].endswith(f"#e{ingress}")
    assert f"after={ingress - 1}" in found.headers["location"]


def test_a_missing_entry_at_the_peer_says_so(fed: LocalFederation, scenario: Scenario) -> None:
    with client(fed) as http:
        missing = http.get(f"/nodes/UZ/envelopes/{scenario.reshare_envelope}", params={"from": "TR"})
    assert missing.status_code == 404
    assert "has no entry about envelope" in missing.text


def test_a_filter_that_does_not_parse_is_shown_not_ignored_silently(fed: LocalFederation) -> None:
    with client(fed) as http:
        page = http.get("/nodes/TR/log", params={"event": "NOT_AN_EVENT", "since": "yesterday"})
    assert page.status_code == 400
    assert "is not an audit event" in page.text
    assert "is not a time" in page.text


def test_an_unknown_member_is_not_found(fed: LocalFederation) -> None:
    with client(fed) as http:
        assert http.get("/nodes/XX/log").status_code == 404


# --------------------------------------------------------------------------- cached checks


def test_checks_are_redone_when_a_database_changes(tampered_copy: LocalFederation) -> None:
    checks = Checks(federation_view(tampered_copy.root))
    assert checks.get("TR").state == "verifies"
    with sqlite3.connect(db_path(tampered_copy, "TR")) as conn:
        conn.execute("UPDATE audit_log SET actor = 'someone' WHERE seq = 3")
    result = checks.get("TR")
    assert (result.state, result.first_altered) == ("broken", 3)


def test_a_form_posted_from_another_site_is_refused(fed: LocalFederation) -> None:
    with client(fed) as http:
        foreign = http.post("/verify", data={"next": "/"}, headers={"origin": "http://attacker.example"})
        own = http.post("/verify", data={"next": "/"}, headers={"origin": "http://127.0.0.1"}, follow_redirects=False)
    assert foreign.status_code == 403
    assert own.status_code == 303


def test_markup_written_into_a_log_is_shown_as_text(tampered_copy: LocalFederation) -> None:
    """An insider who can write the database cannot make the console run their script."""
    with sqlite3.connect(db_path(tampered_copy, "TR")) as conn:
        conn.execute("""UPDATE audit_log SET reason = '<script>alert(1)</script>' WHERE seq = 2""")
    with client(tampered_copy) as http:
        page = http.get("/nodes/TR/log")
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


# --------------------------------------------------------------------------- bundles


def test_the_console_shows_audit_bundles_without_the_nodes(
    fed: LocalFederation, scenario: Scenario, tmp_path: Path
) -> None:
    # SPEC §11.10.8: the same pages over bundles, each checked against the roster first.
    from node.audit.bundle import write_bundle
    from node.audit.sources import bundle_view
    from node.config import load_material

    paths = []
    for member in MEMBERS:
        material = load_material(load_node_config(fed.root / "nodes" / member / "node.toml"))
        path = tmp_path / f"{member}.bundle"
        write_bundle(
            material.config.database_url,
            path,
            member=member,
            federation=material.roster.federation,
            key=material.signing_key,
            now=material.roster.issued_at,
        )
        paths.append(path)
    view = bundle_view(federation_view(fed.root).roster, paths)
    assert {source.kind for source in view.sources.values()} == {"bundle"}
    with TestClient(create_app(view), base_url="http://127.0.0.1") as http:
        trace = http.get(f"/items/{scenario.reshared}")
        federation = http.get("/")
    assert trace.status_code == 200
    assert all(member in trace.text for member in ("KZ", "TR", "AZ"))
    assert federation.text.count("verifies") >= len(MEMBERS)
