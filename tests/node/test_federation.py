"""``intelshare federation init`` and node configuration loading."""

from __future__ import annotations

import dataclasses
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.config import (
    AutoGrant,
    ConsentMode,
    ConsentPolicy,
    load_material,
    load_node_config,
)
from node.federation import FederationLayout, OutputExistsError, init_federation, open_layout
from protocol.classification import Band
from protocol.errors import ConfigurationError, IntelshareError, SignatureError
from protocol.roster import MemberStatus
from protocol.statements import Signed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federation.toml"
# Certificates are checked by TLS against the real clock, so init runs "now"; agreements
# are checked at a fixed 2026 date.
NOW = datetime.now(UTC)
IN_2026 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PRIVATE_FILES = ("signing.key", "hpke.key", "tls.key", "at_rest.key")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(EXAMPLE, tmp_path_factory.mktemp("fed") / "ots", now=NOW)


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "federation.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_layout_files(layout: FederationLayout) -> None:
    assert layout.members == ("TR", "AZ", "KZ", "KG", "UZ", "HU", "TM")
    files = (layout.config, layout.ca_cert, layout.ca_key, layout.secretariat, layout.roster)
    files += (layout.holder_key("chair"), layout.secretariat_dir / "tls.pem", layout.roster_version(1))
    for path in files:
        assert path.is_file(), path
    assert layout.config.read_bytes() == EXAMPLE.read_bytes()
    assert sorted(p.stem for p in layout.agreements_dir.glob("*.json")) == [
        "AZ-KZ", "AZ-TR", "AZ-UZ", "HU-TR", "KG-KZ", "KG-TR", "KZ-TR", "TR-UZ",
    ]  # fmt: skip
    assert layout.demo["originator"] == "KZ"
    reopened = open_layout(layout.root)
    assert reopened.members == layout.members
    assert reopened.node_config("TR") == layout.node_config("TR")


def test_private_files_are_owner_only(layout: FederationLayout) -> None:
    paths = [layout.ca_key, layout.secretariat_dir / "tls.key"]
    paths += [layout.holder_key(holder) for holder in ("chair", "deputy", "registrar")]
    paths += [layout.node_dir(m) / name for m in layout.members for name in PRIVATE_FILES]
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_every_node_loads_and_verifies(layout: FederationLayout) -> None:
    ports = set()
    for member_id in layout.members:
        cfg = load_node_config(layout.node_config(member_id))
        assert cfg.member_id == member_id
        assert cfg.keys.signing == layout.node_dir(member_id) / "signing.key"
        assert cfg.federation.roster == layout.roster
        assert cfg.database_url == f"sqlite:///{layout.node_dir(member_id) / 'node.db'}"
        assert cfg.desk_socket == layout.node_dir(member_id) / "desk.sock"
        material = load_material(cfg)
        assert len(material.at_rest_key) == 32
        assert material.member.member_id == member_id
        assert material.member.endpoint == cfg.listen
        assert material.signing_key.public() == material.member.signing_key
        ports.add(cfg.listen_port)
    assert len(ports) == len(layout.members)


def test_roster_members_statuses_and_markings(layout: FederationLayout) -> None:
    roster = load_material(load_node_config(layout.node_config("TR"))).roster
    assert roster.federation == "OTS"
    assert len(roster.members) == 7
    statuses = {m.member_id: m.status for m in roster.members}
    assert statuses == {
        "TR": MemberStatus.MEMBER, "AZ": MemberStatus.MEMBER, "KZ": MemberStatus.MEMBER,
        "KG": MemberStatus.MEMBER, "UZ": MemberStatus.MEMBER,
        "HU": MemberStatus.OBSERVER, "TM": MemberStatus.OBSERVER,
    }  # fmt: skip
    assert roster.marking("TR", Band.SECRET) == "GİZLİ"
    assert roster.marking("TR", Band.TOP_SECRET) == "ÇOK GİZLİ"
    assert roster.marking("KZ", Band.SECRET) == "СЕКРЕТНО"
    assert roster.marking("HU", Band.RESTRICTED) == "KORLÁTOZOTT TERJESZTÉSŰ"
    assert {"mountain-reconnaissance", "border-clashes", "caspian-security", "terrorism"} <= set(roster.topics)
    for member in roster.members:
        assert member.tls_identity == f"urn:intelshare:member:{member.member_id}"
        assert member.tls_fingerprint is not None
        assert re.fullmatch(r"127\.0\.0\.1:\d+", member.endpoint)


def test_every_agreement_in_force_in_2026_and_each_node_holds_only_its_own(layout: FederationLayout) -> None:
    # SPEC §6.2: a node holds only the agreements it is a party to.
    every = {p.stem for p in layout.agreements_dir.glob("*.json")}
    for member_id in layout.members:
        book = load_material(load_node_config(layout.node_config(member_id))).agreements
        agreements = list(book.agreements())
        assert {a.agreement_id for a in agreements} == {a for a in every if member_id in a.split("-")}, member_id
        for agreement in agreements:
            a, b = agreement.parties
            assert book.in_force(a, b, IN_2026), agreement.agreement_id
            assert book.in_force(b, a, IN_2026), agreement.agreement_id
    book = load_material(load_node_config(layout.node_config("TR"))).agreements
    kz_tr = book.get("TR", "KZ")
    assert kz_tr is not None
    assert kz_tr.valid_from == datetime(2022, 8, 5, tzinfo=UTC)
    assert kz_tr.terms("KZ", "TR").ceiling is Band.SECRET
    tr_uz = book.get("TR", "UZ")
    assert tr_uz is not None
    assert tr_uz.terms("TR", "UZ").ceiling is Band.CONFIDENTIAL
    assert tr_uz.terms("UZ", "TR").ceiling is Band.SECRET


def test_consent_automation(layout: FederationLayout) -> None:
    kz = load_node_config(layout.node_config("KZ")).consent
    assert kz.mode is ConsentMode.RULES
    rule = kz.decide("AZ", Band.SECRET)
    assert isinstance(rule, AutoGrant)
    assert (rule.max_band, rule.valid_days, rule.transferable) == (Band.SECRET, 30, False)
    assert kz.decide("AZ", Band.TOP_SECRET) == "deny"
    assert kz.decide("UZ", Band.RESTRICTED) == "deny"
    assert load_node_config(layout.node_config("TR")).consent.decide("AZ", Band.RESTRICTED) == "manual"
    assert load_node_config(layout.node_config("TM")).consent.decide("TR", Band.UNCLASSIFIED) == "deny"
    lenient = ConsentPolicy(ConsentMode.RULES, (AutoGrant("AZ", Band.CONFIDENTIAL, 7),))
    assert lenient.decide("AZ", Band.SECRET) == "manual"


def test_reinit_into_same_dir_refused(layout: FederationLayout) -> None:
    before = sorted(p.name for p in layout.root.iterdir())
    with pytest.raises(OutputExistsError, match="not empty"):
        init_federation(EXAMPLE, layout.root, now=NOW)
    assert sorted(p.name for p in layout.root.iterdir()) == before


def test_base_port_and_empty_existing_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    layout = init_federation(EXAMPLE, out, now=NOW, base_port=41000)
    listens = [load_node_config(layout.node_config(m)).listen for m in layout.members]
    assert listens == [f"127.0.0.1:{41000 + i}" for i in range(7)]


def test_ceiling_band_without_marking_names_member_and_band(tmp_path: Path) -> None:
    # HU loses its SECRET marking while the HU–TR ceilings are raised to SECRET.
    config = _variant(tmp_path, 'SECRET = "TITKOS"\n', "")
    text = config.read_text(encoding="utf-8").replace(
        'ceilings = { HU = "RESTRICTED", TR = "RESTRICTED" }', 'ceilings = { HU = "SECRET", TR = "SECRET" }'
    )
    config.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(ConfigurationError) as info:
        init_federation(config, out, now=NOW)
    message = str(info.value)
    assert message.startswith(f"{config}: agreements.HU-TR: ")
    assert "HU has no national marking for SECRET" in message
    assert not out.exists()  # nothing written on a validation failure


def test_unknown_key_refused(tmp_path: Path) -> None:
    config = _variant(tmp_path, "max_retention_days = 1825\n", "max_retention_days = 1825\nretension_days = 30\n")
    with pytest.raises(ConfigurationError, match=r"agreements\.KZ-TR: unknown key\(s\): retension_days"):
        init_federation(config, tmp_path / "out", now=NOW)


def test_agreement_party_must_be_member(tmp_path: Path) -> None:
    config = _variant(tmp_path, 'parties = ["KG", "TR"]', 'parties = ["KG", "TJ"]')
    with pytest.raises(ConfigurationError, match="party TJ is not in"):
        init_federation(config, tmp_path / "out", now=NOW)


def test_node_toml_unknown_key_refused(layout: FederationLayout, tmp_path: Path) -> None:
    text = layout.node_config("TR").read_text(encoding="utf-8")
    bad = tmp_path / "node.toml"
    bad.write_text(text.replace("[ingress]\n", "[ingress]\nmax_agee_seconds = 1\n"), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"ingress: unknown key\(s\): max_agee_seconds"):
        load_node_config(bad)


def test_tampered_roster_refused(layout: FederationLayout, tmp_path: Path) -> None:
    copy = tmp_path / "roster.json"
    signed = Signed.model_validate_json(layout.roster.read_bytes())
    # One byte of the signed payload changes: the roster claims version 2.
    payload = bytearray(signed.payload)
    index = payload.index(b'"version":1')
    payload[index + len('"version":')] = ord("2")
    copy.write_text(signed.model_copy(update={"payload": bytes(payload)}).model_dump_json(), encoding="utf-8")
    cfg = load_node_config(layout.node_config("AZ"))
    tampered = dataclasses.replace(cfg, federation=dataclasses.replace(cfg.federation, roster=copy))
    with pytest.raises(SignatureError, match="roster"):
        load_material(tampered)


def test_loose_key_permissions_refused(layout: FederationLayout, tmp_path: Path) -> None:
    key = layout.node_dir("UZ") / "signing.key"
    key.chmod(0o644)
    try:
        with pytest.raises(ConfigurationError, match="0600"):
            load_material(load_node_config(layout.node_config("UZ")))
    finally:
        key.chmod(0o600)


def test_errors_are_typed(tmp_path: Path) -> None:
    bad = tmp_path / "federation.toml"
    bad.write_text("[federation\n", encoding="utf-8")
    with pytest.raises(IntelshareError, match="invalid TOML"):
        init_federation(bad, tmp_path / "out", now=NOW)


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://db.example/intelshare", "sqlite:////srv/intelshare/node.db"],
    ids=["postgres", "absolute-sqlite"],
)
def test_database_url_shared_by_every_member_refused(tmp_path: Path, url: str) -> None:
    # SPEC §11.7: each member its own database; a URL that names one for all is refused at init.
    config = _variant(tmp_path, 'database_url = "sqlite:///node.db"', f'database_url = "{url}"')
    out = tmp_path / "out"
    with pytest.raises(ConfigurationError, match=r"nodes\.database_url: every member's node would share"):
        init_federation(config, out, now=NOW)
    assert not out.exists()


def test_database_url_names_each_members_own_schema(tmp_path: Path) -> None:
    # SPEC §11.7: {member} in [nodes] database_url becomes each member's id, in lower case.
    url = "postgresql+psycopg://db.example/intelshare?options=-csearch_path%3Dis_{member}"
    config = _variant(tmp_path, 'database_url = "sqlite:///node.db"', f'database_url = "{url}"')
    layout = init_federation(config, tmp_path / "out", now=NOW)
    urls = {m: load_node_config(layout.node_config(m)).database_url for m in layout.members}
    assert len(set(urls.values())) == len(urls)
    assert urls["TR"].endswith("search_path%3Dis_tr")
