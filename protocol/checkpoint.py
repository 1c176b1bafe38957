"""Signed checkpoints of a node's audit log, cosignatures and the witness rule (SPEC §11.10).

A checkpoint is the C2SP ``tlog-checkpoint`` note text (origin, tree size, root hash)
signed in the C2SP ``signed-note`` form. The log signs it, and each witness co-signs it,
with a C2SP ``tlog-cosignature`` (``cosignature/v1``): a timestamped signature over
``"cosignature/v1\\ntime <t>\\n"`` followed by the note text. The log's own signature is
the same kind of statement as a witness's ("as of time t, the largest tree of this log
I have seen has this root"), so the time needs no extension line, and one verifier
serves both. Every signature is made with the member's roster identity (SPEC §5.4.1):
Ed25519 as C2SP signature type 0x04, and for a hybrid identity also ML-DSA-65 over the
same message under a private signature type; a verifier requires every algorithm the
roster key has.

The witness rule (``witness``) is a pure function returning a ``WitnessDecision`` with a
stable reason code; the caller looks up and stores the witnessed state in one
transaction, passes the clock in and sends the answer. Nothing here does I/O.

Why not a library: the C2SP note formats have maintained implementations in Go
(golang.org/x/mod/sumdb/note, transparency-dev/formats), none in Python that covers
cosignatures; the text format is small, and every signature goes through
``protocol.keys`` (``cryptography``), so no primitive is handled here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import quote

from protocol.encoding import b64decode, b64encode
from protocol.errors import ConfigurationError, MalformedError, ProofError, SignatureError
from protocol.keys import PublicSigningKey, SignatureAlg, SigningKey, keyid_of
from protocol.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from protocol.roster import Member, Roster

__all__ = [
    "COSIGNATURE_HEADER",
    "ED25519_COSIGNATURE_TYPE",
    "MAX_NOTE_BYTES",
    "MAX_NOTE_SIGNATURES",
    "MAX_PROOF_LINES",
    "MAX_TREE_SIZE",
    "ML_DSA_65_COSIGNATURE_TYPE",
    "WITNESS_RULES",
    "Checkpoint",
    "Cosignature",
    "CosignedCheckpoint",
    "NoteSignature",
    "SignedCheckpoint",
    "VerifiedCheckpoint",
    "WitnessDecision",
    "WitnessReason",
    "WitnessRequest",
    "Witnessed",
    "accept_cosignature",
    "cosigned_message",
    "log_origin",
    "note_key_id",
    "parse_checkpoint",
    "parse_witness_request",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_cosigned",
    "verify_own_checkpoint",
    "witness",
    "witness_name",
    "witness_request",
]

#: First line of every signed message (C2SP tlog-cosignature, SPEC §11.10.2).
COSIGNATURE_HEADER = b"cosignature/v1\n"
#: C2SP signed-note signature type of a timestamped Ed25519 cosignature.
ED25519_COSIGNATURE_TYPE = b"\x04"
#: 0xff (no C2SP byte assigned) and an identifier: a timestamped ML-DSA-65 signature over
#: the same message as the Ed25519 one (SPEC §11.10.2).
ML_DSA_65_COSIGNATURE_TYPE = b"\xff" + b"intelshare/cosignature/v1/ml-dsa-65"
#: Largest tree size a checkpoint may state (fits a signed 64-bit database column).
MAX_TREE_SIZE = (1 << 63) - 1
#: Bounds of a note: enough for a checkpoint cosigned by every member of a 256-member
#: roster with hybrid identities (2 lines each, about 4.5 KB per ML-DSA-65 line).
MAX_NOTE_BYTES = 2 * 1024 * 1024
MAX_NOTE_SIGNATURES = 1024
#: At most this many consistency proof lines in a witness request (C2SP tlog-witness).
MAX_PROOF_LINES = 63

_EM_DASH_SPACE = "\u2014 "
_MAX_TIMESTAMP = (1 << 63) - 1
_TIMESTAMP_LEN = 8
_SIGNATURE_LEN = {SignatureAlg.ED25519: 64, SignatureAlg.ML_DSA_65: 3309}
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_KEY_NAME = re.compile(r"[^\s+]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,18})")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


# --- names and key ids ----------------------------------------------------------------------


def log_origin(federation: str, member_id: str) -> str:
    """The origin line (and log key name) of ``member_id``'s audit log (SPEC §11.10.2).

    ``intelshare/<federation>/audit/<member id>``, the federation name percent-encoded
    (UTF-8, every byte outside ``A-Z a-z 0-9 - . _ ~``), so it has no spaces, ``+`` or ``/``.
    """
    return f"intelshare/{quote(federation, safe='')}/audit/{member_id}"


def witness_name(federation: str, member_id: str) -> str:
    """The key name under which ``member_id`` co-signs other members' checkpoints (SPEC §11.10.4)."""
    return f"intelshare/{quote(federation, safe='')}/witness/{member_id}"


def note_key_id(name: str, signature_type: bytes, public_key: bytes) -> bytes:
    """C2SP signed-note key id: ``SHA-256(name || 0x0A || type || public key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + signature_type + public_key).digest()[:4]


def cosigned_message(body: bytes, timestamp: int) -> bytes:
    """What a log or witness signs: ``cosignature/v1``, the time line, the note text (SPEC §11.10.2)."""
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + body


def _posix(at: datetime) -> int:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("times must be timezone-aware")
    seconds = int(at.timestamp() // 1)
    if not 0 < seconds <= _MAX_TIMESTAMP:
        raise ValueError(f"{at} is outside the range of a cosignature timestamp")
    return seconds


def _datetime(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- the note ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The three lines of a checkpoint's note text (SPEC §11.10.2)."""

    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        """The note text: origin, size and base64 root, each ending in a newline."""
        return f"{self.origin}\n{self.size}\n{b64encode(self.root)}\n".encode()


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, and the signature bytes after the id."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> bytes:
        """``— <name> base64(key id || signature)`` and a newline."""
        return f"{_EM_DASH_SPACE}{self.name} {b64encode(self.key_id + self.signature)}\n".encode()


@dataclass(frozen=True)
class SignedCheckpoint:
    """A parsed checkpoint note: the checkpoint and every signature line, in order."""

    checkpoint: Checkpoint
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        """The note: text, a blank line, the signature lines (the bytes it was parsed from)."""
        return self.checkpoint.body() + b"\n" + b"".join(s.line() for s in self.signatures)


def _canonical_b64(text: str, what: str) -> bytes:
    if not _BASE64.fullmatch(text):
        raise MalformedError(f"{what} is not base64")
    try:
        value = b64decode(text)
    except ValueError as exc:  # binascii.Error: bad padding
        raise MalformedError(f"{what} is not base64") from exc
    if b64encode(value) != text:
        raise MalformedError(f"{what} is not canonical base64")
    return value


def _signature_line(line: str) -> NoteSignature:
    if not line.startswith(_EM_DASH_SPACE):
        raise MalformedError("a signature line must start with an em dash and a space")
    name, space, encoded = line[len(_EM_DASH_SPACE) :].partition(" ")
    if not space or not _KEY_NAME.fullmatch(name):
        raise MalformedError("a key name must be non-empty, without spaces or '+'")
    value = _canonical_b64(encoded, f"signature by {name}")
    if len(value) < 5:
        raise MalformedError(f"signature by {name} is shorter than a key id and one byte")
    return NoteSignature(name, value[:4], value[4:])


def _text(data: bytes, what: str) -> str:
    if len(data) > MAX_NOTE_BYTES:
        raise MalformedError(f"{what} is longer than {MAX_NOTE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"{what} is not UTF-8") from exc
    if _CONTROL.search(text):
        raise MalformedError(f"{what} holds a control character other than newline")
    if not text.endswith("\n"):
        raise MalformedError(f"{what} does not end with a newline")
    return text


def _signature_lines(lines: Sequence[str]) -> tuple[NoteSignature, ...]:
    if not lines:
        raise MalformedError("a note needs at least one signature line")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise MalformedError(f"more than {MAX_NOTE_SIGNATURES} signature lines")
    signatures = tuple(_signature_line(line) for line in lines)
    if len({(s.name, s.key_id) for s in signatures}) != len(signatures):
        raise MalformedError("two signature lines by the same key")
    return signatures


def parse_checkpoint(data: bytes) -> SignedCheckpoint:
    """Parse a checkpoint note strictly (SPEC §11.10.2); anything else is ``MalformedError``.

    Exactly three text lines (no extension lines), a blank line, then one or more
    signature lines; canonical numbers and base64; re-serialising the result gives
    ``data`` back byte for byte. Nothing is verified: see ``verify_checkpoint``.
    """
    lines = _text(data, "checkpoint").split("\n")[:-1]
    if len(lines) < 4 or lines[3] != "":
        raise MalformedError("a checkpoint is three lines, a blank line and signatures (no extension lines)")
    origin, size_text, root_text = lines[:3]
    if not _KEY_NAME.fullmatch(origin):
        raise MalformedError("the origin must be non-empty, without spaces or '+'")
    if not _SIZE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise MalformedError("the tree size is not a decimal number without leading zeros")
    root = _canonical_b64(root_text, "root hash")
    if len(root) != HASH_SIZE:
        raise MalformedError(f"the root hash is not {HASH_SIZE} bytes")
    size = int(size_text)
    if size == 0 and root != EMPTY_ROOT:
        raise MalformedError("an empty tree's root is SHA-256 of nothing")
    return SignedCheckpoint(Checkpoint(origin, size, root), _signature_lines(lines[4:]))


# --- signing and verifying identities --------------------------------------------------------


def _line_types(public: PublicSigningKey) -> list[tuple[SignatureAlg, bytes, bytes]]:
    """(algorithm, signature type, public key) of every algorithm of an identity (SPEC §5.4.1)."""
    out = [(SignatureAlg.ED25519, ED25519_COSIGNATURE_TYPE, public.ed25519)]
    if public.ml_dsa_65 is not None:
        out.append((SignatureAlg.ML_DSA_65, ML_DSA_65_COSIGNATURE_TYPE, public.ml_dsa_65))
    return out


def _sign(key: SigningKey, name: str, body: bytes, timestamp: int) -> tuple[NoteSignature, ...]:
    """One timestamped signature line per algorithm of ``key``, all over one message."""
    public = key.public()
    by_alg = {alg: sig for _, alg, sig in key.sign(cosigned_message(body, timestamp))}
    return tuple(
        NoteSignature(
            name,
            note_key_id(name, signature_type, raw),
            timestamp.to_bytes(_TIMESTAMP_LEN, "big") + by_alg[alg.value],
        )
        for alg, signature_type, raw in _line_types(public)
    )


def _verify_identity(
    body: bytes, signatures: Iterable[NoteSignature], name: str, public: PublicSigningKey
) -> tuple[int, tuple[NoteSignature, ...]] | None:
    """The time and lines of ``public``'s signature under ``name`` (SPEC §11.10.3 steps 3-5).

    None if no line is from one of its keys (the note says nothing from it). Raises
    ``SignatureError`` if any line is, but not every algorithm of the identity signed,
    with one time, validly.
    """
    by_key = {(s.name, s.key_id): s for s in signatures}
    kinds = _line_types(public)
    found = [by_key.get((name, note_key_id(name, signature_type, raw))) for _, signature_type, raw in kinds]
    if all(line is None for line in found):
        return None
    signature_map: dict[tuple[str, str], bytes] = {}
    times: set[int] = set()
    for (alg, _, raw), line in zip(kinds, found, strict=True):
        if line is None:
            raise SignatureError(f"{name}: no {alg.value} signature (the roster key has it)")
        if len(line.signature) != _TIMESTAMP_LEN + _SIGNATURE_LEN[alg]:
            raise SignatureError(f"{name}: {alg.value} signature has the wrong length")
        times.add(int.from_bytes(line.signature[:_TIMESTAMP_LEN], "big"))
        signature_map[keyid_of(raw), alg.value] = line.signature[_TIMESTAMP_LEN:]
    if len(times) != 1:
        raise SignatureError(f"{name}: signature lines carry different times")
    (timestamp,) = times
    if not 0 < timestamp <= _MAX_TIMESTAMP:
        raise SignatureError(f"{name}: timestamp out of range")
    if not public.verify(cosigned_message(body, timestamp), signature_map):
        raise SignatureError(f"{name}: signature does not verify")
    return timestamp, tuple(line for line in found if line is not None)


def _log_member(roster: Roster, origin: str) -> Member | None:
    prefix = log_origin(roster.federation, "")
    if not origin.startswith(prefix):
        return None
    return roster.member(origin[len(prefix) :])


def _signed_by_member(
    body: bytes, signatures: Sequence[NoteSignature], name: str, roster: Roster, member: Member
) -> tuple[int, tuple[NoteSignature, ...]] | None:
    """``_verify_identity`` with the member's key, or a retired one in its overlap (SPEC §5.4.3).

    A revoked key is an unknown key: its lines are ignored.
    """
    for key in roster.verification_keys(member.member_id):
        signed = _verify_identity(body, signatures, name, key)
        if signed is not None:
            return signed
    return None


# --- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature verified with the roster key (SPEC §11.10.3)."""

    checkpoint: Checkpoint
    member_id: str
    #: When the log signed it (its signature's timestamp).
    time: datetime
    #: The log's own signature lines (one per algorithm of its identity).
    log_signatures: tuple[NoteSignature, ...]

    def note(self) -> bytes:
        """The checkpoint with the log's signature lines only."""
        return SignedCheckpoint(self.checkpoint, self.log_signatures).to_bytes()


def sign_checkpoint(
    key: SigningKey, *, federation: str, member_id: str, size: int, root: bytes, now: datetime
) -> bytes:
    """The checkpoint note of ``member_id``'s log at ``size`` leaves with ``root``, signed at ``now``.

    One ``cosignature/v1`` line per algorithm of ``key`` (SPEC §11.10.2). The caller MUST
    NOT sign a checkpoint that is smaller than, inconsistent with, or older than one it
    signed before (SPEC §11.10.2).
    """
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ValueError(f"tree size {size} is out of range")
    if len(root) != HASH_SIZE or (size == 0 and root != EMPTY_ROOT):
        raise ValueError("not a root hash of a tree of that size")
    checkpoint = Checkpoint(log_origin(federation, member_id), size, root)
    return SignedCheckpoint(checkpoint, _sign(key, checkpoint.origin, checkpoint.body(), _posix(now))).to_bytes()


def _verify_log(note: SignedCheckpoint, roster: Roster, member: Member) -> VerifiedCheckpoint:
    if not roster.verification_keys(member.member_id):
        raise SignatureError(f"{member.member_id}'s signing key is revoked")
    checkpoint = note.checkpoint
    signed = _signed_by_member(checkpoint.body(), note.signatures, checkpoint.origin, roster, member)
    if signed is None:
        raise SignatureError(f"no signature by {member.member_id}'s roster key on its checkpoint")
    timestamp, lines = signed
    return VerifiedCheckpoint(checkpoint, member.member_id, _datetime(timestamp), lines)


def verify_checkpoint(data: bytes, *, roster: Roster, member_id: str) -> VerifiedCheckpoint:
    """Parse strictly, then verify ``member_id``'s signature on its log's checkpoint (SPEC §11.10.3).

    ``MalformedError`` if it does not parse; ``SignatureError`` if it is not for
    ``member_id``'s log, the member is unknown or its key revoked, or not every algorithm
    of its roster key signed it validly with one time. Other signature lines are ignored.
    """
    return _verify_note(parse_checkpoint(data), roster, member_id)


def verify_own_checkpoint(
    data: bytes, *, federation: str, member_id: str, keys: Sequence[PublicSigningKey]
) -> VerifiedCheckpoint:
    """A log owner's check of its own checkpoint at start (SPEC §11.10.6), with any key it held.

    Unlike ``verify_checkpoint`` it does not consult the roster: a node checks that its
    own log is as it left it, also after the roster revoked or retired the key that
    signed the checkpoint (SPEC §5.4.3). ``SignatureError`` if the note is for another log
    or none of ``keys`` signed it.
    """
    note = parse_checkpoint(data)
    if note.checkpoint.origin != log_origin(federation, member_id):
        raise SignatureError(f"checkpoint of {note.checkpoint.origin!r}, not of {member_id}'s log")
    for key in keys:
        signed = _verify_identity(note.checkpoint.body(), note.signatures, note.checkpoint.origin, key)
        if signed is not None:
            timestamp, lines = signed
            return VerifiedCheckpoint(note.checkpoint, member_id, _datetime(timestamp), lines)
    raise SignatureError(f"no signature by a key {member_id} held on its checkpoint")


def _verify_note(note: SignedCheckpoint, roster: Roster, member_id: str) -> VerifiedCheckpoint:
    member = roster.member(member_id)
    if member is None:
        raise SignatureError(f"{member_id} is not a roster member")
    if note.checkpoint.origin != log_origin(roster.federation, member_id):
        raise SignatureError(f"checkpoint of {note.checkpoint.origin!r}, not of {member_id}'s log")
    return _verify_log(note, roster, member)


# --- cosignatures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosignature:
    """A witness's verified cosignature on a checkpoint (SPEC §11.10.4)."""

    witness: str
    #: When the witness co-signed (its signature's timestamp).
    time: datetime
    #: Its signature lines, to append to the checkpoint note the log keeps.
    lines: bytes


@dataclass(frozen=True)
class CosignedCheckpoint:
    """A verified checkpoint and the members that verifiably witnessed it (SPEC §11.10.6)."""

    checkpoint: VerifiedCheckpoint
    witnesses: tuple[Cosignature, ...]


def _cosignature(
    body: bytes, signatures: Sequence[NoteSignature], roster: Roster, witness: Member
) -> Cosignature | None:
    signed = _signed_by_member(body, signatures, witness_name(roster.federation, witness.member_id), roster, witness)
    if signed is None:
        return None
    timestamp, lines = signed
    return Cosignature(witness.member_id, _datetime(timestamp), b"".join(line.line() for line in lines))


def accept_cosignature(
    checkpoint: bytes, response: bytes, *, roster: Roster, member_id: str, witness_id: str
) -> Cosignature:
    """Verify a witness's answer (its signature lines) to ``member_id``'s own ``checkpoint``.

    What the log does with a witness's ``CHECKPOINT_WITNESSED`` answer before keeping it
    (SPEC §11.10.6): ``witness_id`` must be another roster member with a usable key, and
    the answer must hold its valid cosignature (every algorithm, one time) of exactly
    this checkpoint. Lines from other keys are ignored. ``MalformedError`` or
    ``SignatureError`` otherwise.
    """
    verified = verify_checkpoint(checkpoint, roster=roster, member_id=member_id)
    lines = _signature_lines(_text(response, "cosignature").split("\n")[:-1])
    witness_member = roster.member(witness_id)
    if witness_member is None or witness_id == member_id:
        raise SignatureError(f"{witness_id} cannot witness {member_id}'s log")
    cosignature = _cosignature(verified.checkpoint.body(), lines, roster, witness_member)
    if cosignature is None:
        raise SignatureError(f"no cosignature by {witness_id}'s usable roster key")
    return cosignature


def verify_cosigned(data: bytes, *, roster: Roster, member_id: str, quorum: int) -> CosignedCheckpoint:
    """Verify ``member_id``'s checkpoint and at least ``quorum`` witnesses' cosignatures on it.

    For a log owner or auditor holding a checkpoint with the cosignature lines appended
    (SPEC §11.10.6). A cosignature counts if it is by another roster member whose key is
    not revoked, with every algorithm of that key. Lines by anyone else (non-members,
    revoked keys, the log itself under a witness name) are ignored; a line by a counted
    key that does not verify makes the whole note fail. ``SignatureError`` if fewer than
    ``quorum`` count.
    """
    if quorum < 1:
        raise ValueError("quorum must be at least 1")
    note = parse_checkpoint(data)
    verified = _verify_note(note, roster, member_id)
    body = note.checkpoint.body()
    witnesses = tuple(
        cosignature
        for witness_member in roster.members
        if witness_member.member_id != member_id
        and (cosignature := _cosignature(body, note.signatures, roster, witness_member)) is not None
    )
    if len(witnesses) < quorum:
        raise SignatureError(f"{len(witnesses)} valid cosignatures, {quorum} required")
    return CosignedCheckpoint(verified, witnesses)


# --- the witness ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessRequest:
    """A request to witness a checkpoint (C2SP tlog-witness ``add-checkpoint`` body, SPEC §11.10.5)."""

    old_size: int
    proof: tuple[bytes, ...]
    note: SignedCheckpoint


def witness_request(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """``old <size>``, one base64 proof hash a line, a blank line, the checkpoint note."""
    lines = [f"old {old_size}\n".encode(), *(b64encode(p).encode() + b"\n" for p in proof), b"\n"]
    return b"".join(lines) + checkpoint


def parse_witness_request(data: bytes) -> WitnessRequest:
    """Parse a witness request strictly (SPEC §11.10.5 step 1); ``MalformedError`` otherwise."""
    head, blank, note = data.partition(b"\n\n")
    if not blank:
        raise MalformedError("a witness request is an old size, proof lines, a blank line and a checkpoint")
    lines = _text(head + b"\n", "witness request").split("\n")[:-1]
    old = _OLD_LINE.fullmatch(lines[0])
    if old is None:
        raise MalformedError("the first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise MalformedError(f"more than {MAX_PROOF_LINES} proof lines")
    proof = tuple(_canonical_b64(line, "a proof line") for line in lines[1:])
    if any(len(p) != HASH_SIZE for p in proof):
        raise MalformedError(f"a proof hash is not {HASH_SIZE} bytes")
    # An old size above the checkpoint's is not refused here (C2SP answers 400): steps 5
    # and 6 classify it, so a rolled-back log's request is reported as a rollback.
    return WitnessRequest(int(old.group(1)), proof, parse_checkpoint(note))


class WitnessReason(StrEnum):
    """Stable reason codes of the witness rule (SPEC §11.10.5)."""

    CHECKPOINT_WITNESSED = "CHECKPOINT_WITNESSED"
    CHECKPOINT_MALFORMED = "CHECKPOINT_MALFORMED"
    CHECKPOINT_UNKNOWN_LOG = "CHECKPOINT_UNKNOWN_LOG"
    CHECKPOINT_SIGNATURE_INVALID = "CHECKPOINT_SIGNATURE_INVALID"
    CHECKPOINT_FROM_FUTURE = "CHECKPOINT_FROM_FUTURE"
    CHECKPOINT_FORK = "CHECKPOINT_FORK"
    CHECKPOINT_ROLLBACK = "CHECKPOINT_ROLLBACK"
    CHECKPOINT_STALE = "CHECKPOINT_STALE"
    CHECKPOINT_OLD_SIZE_MISMATCH = "CHECKPOINT_OLD_SIZE_MISMATCH"
    CONSISTENCY_PROOF_INVALID = "CONSISTENCY_PROOF_INVALID"


#: The step of SPEC §11.10.5 behind each reason code.
WITNESS_RULES: dict[WitnessReason, str] = {
    WitnessReason.CHECKPOINT_MALFORMED: "§11.10.5 step 1",
    WitnessReason.CHECKPOINT_UNKNOWN_LOG: "§11.10.5 step 2",
    WitnessReason.CHECKPOINT_SIGNATURE_INVALID: "§11.10.5 step 3",
    WitnessReason.CHECKPOINT_FROM_FUTURE: "§11.10.5 step 4",
    WitnessReason.CHECKPOINT_FORK: "§11.10.5 step 5",
    WitnessReason.CHECKPOINT_ROLLBACK: "§11.10.5 step 5",
    WitnessReason.CHECKPOINT_STALE: "§11.10.5 step 5",
    WitnessReason.CHECKPOINT_OLD_SIZE_MISMATCH: "§11.10.5 step 6",
    WitnessReason.CONSISTENCY_PROOF_INVALID: "§11.10.5 step 7",
    WitnessReason.CHECKPOINT_WITNESSED: "§11.10.5 step 8",
}


@dataclass(frozen=True)
class Witnessed:
    """What a witness keeps per log: the latest checkpoint it co-signed (SPEC §11.10.5)."""

    origin: str
    size: int
    root: bytes
    #: The log's signing time of that checkpoint.
    log_time: datetime
    #: The checkpoint with the log's signature lines and this witness's cosignature lines.
    note: bytes


@dataclass(frozen=True)
class WitnessDecision:
    """The witness's answer to one request, with a stable reason code (SPEC §11.10.5)."""

    reason: WitnessReason
    rule: str
    detail: str
    #: The log's member id, once the origin named a known log (step 2).
    log_member: str | None = None
    checkpoint: Checkpoint | None = None
    #: The size the witness holds for this log, for the log to build its next request from
    #: (C2SP's 409 answer); set from step 5 on.
    witnessed_size: int | None = None
    #: The witness's signature lines, the answer to send (CHECKPOINT_WITNESSED only).
    cosignature: bytes | None = None
    #: The new state to store for the origin, in the transaction that read the old one.
    keep: Witnessed | None = None
    #: Two notes signed by the log that contradict each other: the one held and the one
    #: received (CHECKPOINT_FORK, CHECKPOINT_ROLLBACK). Evidence for an auditor.
    evidence: tuple[bytes, bytes] | None = None

    @property
    def accepted(self) -> bool:
        """True only for CHECKPOINT_WITNESSED."""
        return self.reason is WitnessReason.CHECKPOINT_WITNESSED


def _decide(
    reason: WitnessReason,
    detail: str,
    log_member: str | None = None,
    checkpoint: Checkpoint | None = None,
    witnessed_size: int | None = None,
    *,
    cosignature: bytes | None = None,
    keep: Witnessed | None = None,
    evidence: tuple[bytes, bytes] | None = None,
) -> WitnessDecision:
    return WitnessDecision(
        reason, WITNESS_RULES[reason], detail, log_member, checkpoint, witnessed_size, cosignature, keep, evidence
    )


def witness(
    request: bytes,
    *,
    roster: Roster,
    witness_id: str,
    key: SigningKey,
    last: Callable[[str], Witnessed | None],
    now: datetime,
    max_future: timedelta,
) -> WitnessDecision:
    """Decide whether to co-sign a log's checkpoint (SPEC §11.10.5), and co-sign it if so.

    ``last(origin)`` gives what this witness keeps for that log (None before the first
    checkpoint). The caller MUST read it and store ``decision.keep`` in one transaction
    that serialises requests for the same origin, and SHOULD audit every decision
    (keeping ``evidence``). ``max_future`` is how far ahead of ``now`` a log's signing time
    may be. ``ConfigurationError`` if ``key`` is not ``witness_id``'s usable roster key.
    """
    if max_future < timedelta(0):
        raise ValueError("max_future must not be negative")
    me = roster.member(witness_id)
    if me is None or me.signing_key != key.public() or roster.is_revoked(me.signing_key.keyid):
        raise ConfigurationError(f"the witness key is not {witness_id}'s usable roster key")
    cosign_time = _posix(now)
    try:  # SPEC §11.10.5 step 1
        parsed = parse_witness_request(request)
    except MalformedError as exc:
        return _decide(WitnessReason.CHECKPOINT_MALFORMED, str(exc))
    note, checkpoint = parsed.note, parsed.note.checkpoint
    member = _log_member(roster, checkpoint.origin)  # step 2
    if member is None or member.member_id == witness_id:
        detail = f"{checkpoint.origin!r} is no other member's log"
        return _decide(WitnessReason.CHECKPOINT_UNKNOWN_LOG, detail, None, checkpoint)
    log = member.member_id
    try:  # step 3
        verified = _verify_log(note, roster, member)
    except SignatureError as exc:
        return _decide(WitnessReason.CHECKPOINT_SIGNATURE_INVALID, str(exc), log, checkpoint)
    if verified.time > now + max_future:  # step 4
        detail = f"signed at {verified.time}, now {now}"
        return _decide(WitnessReason.CHECKPOINT_FROM_FUTURE, detail, log, checkpoint)
    held = last(checkpoint.origin)
    held_size = 0 if held is None else held.size
    if held is not None:  # step 5
        evidence = (held.note, note.to_bytes())
        if checkpoint.size == held.size and checkpoint.root != held.root:
            detail = f"two roots signed for size {held.size}"
            return _decide(WitnessReason.CHECKPOINT_FORK, detail, log, checkpoint, held_size, evidence=evidence)
        if checkpoint.size < held.size and verified.time > held.log_time:
            detail = f"size {checkpoint.size} signed at {verified.time}, after size {held.size} at {held.log_time}"
            return _decide(WitnessReason.CHECKPOINT_ROLLBACK, detail, log, checkpoint, held_size, evidence=evidence)
        if checkpoint.size < held.size or verified.time < held.log_time:
            detail = f"size {checkpoint.size} signed at {verified.time}; witnessed size {held.size} at {held.log_time}"
            return _decide(WitnessReason.CHECKPOINT_STALE, detail, log, checkpoint, held_size)
    if parsed.old_size != held_size:  # step 6
        detail = f"request is from size {parsed.old_size}, witnessed size is {held_size}"
        return _decide(WitnessReason.CHECKPOINT_OLD_SIZE_MISMATCH, detail, log, checkpoint, held_size)
    try:  # step 7
        if held is None or parsed.old_size in (0, checkpoint.size):
            if parsed.proof:
                raise ProofError(f"a proof from size {parsed.old_size} to {checkpoint.size} must be empty")
        else:
            verify_consistency(held.size, checkpoint.size, held.root, checkpoint.root, parsed.proof)
    except ProofError as exc:
        return _decide(WitnessReason.CONSISTENCY_PROOF_INVALID, str(exc), log, checkpoint, held_size)
    name = witness_name(roster.federation, witness_id)  # step 8
    lines = b"".join(line.line() for line in _sign(key, name, checkpoint.body(), cosign_time))
    keep = Witnessed(checkpoint.origin, checkpoint.size, checkpoint.root, verified.time, verified.note() + lines)
    detail = f"size {checkpoint.size} extends size {held_size}"
    return _decide(WitnessReason.CHECKPOINT_WITNESSED, detail, log, checkpoint, held_size, cosignature=lines, keep=keep)
