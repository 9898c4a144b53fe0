"""Issue 10, item 2: the public transparency log links nobody. Everything the public can read is a salted commitment
or derived from commitments; the person an entry is about holds its opening in a receipt that the stock offline
verifier checks; proofs still verify with the RFC 9162 algorithms; logs from before salts keep their old heads.

The attack: two providers (acme, globex) each know their own request ids (and tokens, and when they asked). They
read every public transparency endpoint and look for any byte that contains one of their ids, the broker's session
ids or subjects, an event name, an entry's exact time, or a value derived from any of them without a secret (the
entry's plain hash or RFC 9162 leaf hash, an id's hash). On the log as it was before issue 10 the entries endpoint
alone handed them `facts.reused` entries naming a request id next to a session id.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from idbroker_verifier import VerificationError, Verifier, verify_receipt
from idbroker_verifier.receipt import verify_inclusion

from attestations.models import Attestation
from attestations.signing import sign_tree_head
from audit import merkle
from audit.models import AuditEvent, AuditRef, TreeHead
from audit.services import EVENTS, _entry_hash, audit_record, audit_verify, entry_body, entry_commitment
from audit.transparency import forget_leaves, receipt, tree_head_latest, tree_head_publish, tree_heads_verify
from tests import journey
from verification.models import VerificationSession

pytestmark = pytest.mark.django_db

# Every public endpoint of the transparency log (broker/urls.py); the scan below reads all of them.
PUBLIC = ("/transparency/tree-head", "/transparency/entries", "/transparency/proof/inclusion",
          "/transparency/proof/consistency")  # fmt: skip
# Event names an outsider must not see. Per-person events above all, but the public sees no event name at all:
# even counts of event types over time can single out a transaction.
PER_PERSON_EVENTS = EVENTS | {"admin.signin"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forms(data: bytes) -> set[str]:
    """The ways a derived value could appear in JSON text: hex, base64, base64url."""
    return {data.hex(), base64.b64encode(data).decode(), _b64url(data)}


def _public_text(client: Client) -> str:
    """Everything the transparency endpoints answer, for every index and size, JWS payloads decoded too."""
    out = []
    head = client.get(PUBLIC[0])
    assert head.status_code == 200
    size = head.json()["tree_size"]
    out.append(head.content.decode())
    for part in head.json()["token"].split(".")[:2]:
        out.append(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode())
    entries = client.get(PUBLIC[1], {"start": 0, "end": size + 5})
    out.append(entries.content.decode())
    for index in range(size):
        out.append(client.get(PUBLIC[2], {"index": index, "tree_size": size}).content.decode())
    for first in range(1, size + 1):
        out.append(client.get(PUBLIC[3], {"first": first, "second": size}).content.decode())
    return "\n".join(out)


@pytest.mark.django_db(transaction=True)
def test_two_providers_find_nothing_of_their_users_in_any_public_transparency_output(acme, globex, signing_key):
    # Two people verify, one with each provider; the second reuses facts, which names a request next to a session.
    acme_trip, acme_final = journey.complete(acme, ["age_over_18"], scenario="approved")
    globex_trip, globex_final = journey.complete(globex, ["age_over_18"], scenario="approved")
    assert acme_final["status"] == globex_final["status"] == "completed"
    sessions = list(VerificationSession.objects.all())
    audit_record(event="facts.reused", request=globex_trip.request_id, session=sessions[0].pk)
    audit_record(event="request.expired", request="vr_unused_by_acme", session=sessions[1].pk, reason="abandoned")
    head = tree_head_publish(now=sessions[0].created_at + timedelta(hours=1))
    assert head.tree_size == AuditEvent.objects.count()

    outsider = Client()
    text = _public_text(outsider)

    secrets = {acme_trip.request_id, globex_trip.request_id, "vr_unused_by_acme"}
    secrets |= {s.pk for s in sessions} | {s.subject for s in sessions}
    secrets |= set(Attestation.objects.values_list("jti", flat=True))
    for token in (acme_final["attestation"], globex_final["attestation"]):
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        secrets |= {payload["sub"], payload["jti"]}
    # Every random id an entry names, except the ones public by design (the signing key's kid is in the JWKS, a
    # provider's client_id and a policy name are not about a person); short values are words such as "decided".
    for value in AuditRef.objects.exclude(key__in=("kid", "provider", "policy")).values_list("value", flat=True):
        if len(value) > 8:
            secrets.add(value)
    assert len(secrets) > 10
    for secret in secrets:
        assert secret not in text, secret
        assert not _forms(hashlib.sha256(secret.encode()).digest()) & {w for w in _words(text)}, secret
    for event in PER_PERSON_EVENTS:
        assert event not in text, event

    words = set(_words(text))
    for row in AuditEvent.objects.all():
        body = entry_body(row.seq, row.event, row.refs, row.at)
        # Derived without a secret: the entry's hash, its RFC 9162 leaf hash (what proofs carried before), and the
        # commitment with an empty salt. None may appear; only the salted commitment does.
        for derived in (hashlib.sha256(body).digest(), merkle.leaf_hash(body), entry_commitment("", body)):
            assert not _forms(derived) & words, row.seq
        # Exact times: the entry's time in every usual spelling. Tree heads carry only whole minutes.
        if row.at.second:
            spellings = {row.at.isoformat(), row.at.strftime("%Y-%m-%dT%H:%M:%S"), str(int(row.at.timestamp()))}
            assert not any(s in text for s in spellings), row.at
    assert outsider.get(PUBLIC[0]).json()["timestamp"].endswith(":00+00:00")

    # Two providers' requests cannot be joined through the log: the public form of each entry is a commitment, and
    # each is different even for entries that say the same thing.
    commitments = [e["commitment"] for e in outsider.get(PUBLIC[1], {"start": 0, "end": 1000}).json()["entries"]]
    assert len(set(commitments)) == len(commitments) == head.tree_size


def _words(text: str) -> list[str]:
    import re

    return re.findall(r"[A-Za-z0-9+/=_-]{20,}", text)


def test_identical_entries_get_unrelated_commitments(signing_key, now):
    first = audit_record(event="attestation.revoked", provider="acme", jti="jti_same", now=now)
    second = audit_record(event="attestation.revoked", provider="acme", jti="jti_same", now=now)
    assert first.salt != second.salt and len(bytes.fromhex(first.salt)) == 32
    body = entry_body(1, "attestation.revoked", {"provider": "acme", "jti": "jti_same"}, now.replace(microsecond=0))
    assert entry_commitment(first.salt, body) != entry_commitment(second.salt, body)


def test_the_public_sees_the_log_only_as_far_as_the_newest_signed_head(client, signing_key, now):
    for i in range(3):
        audit_record(event="request.created", request=f"vr_{i}", provider="acme", now=now)
    assert client.get(PUBLIC[1], {"start": 0, "end": 10}).json()["entries"] == []  # nothing signed yet
    head = tree_head_publish(now=now)
    audit_record(event="request.created", request="vr_after_the_head", provider="acme", now=now)
    entries = client.get(PUBLIC[1], {"start": 0, "end": 10}).json()["entries"]
    assert [e["index"] for e in entries] == list(range(head.tree_size))
    beyond = client.get(PUBLIC[2], {"index": 0, "tree_size": head.tree_size + 1})
    assert beyond.status_code == 400 and beyond.json()["code"] == "outside_the_log"
    assert client.get(PUBLIC[3], {"first": 1, "second": head.tree_size + 1}).status_code == 400


def test_tree_heads_carry_whole_minutes_and_name_their_leaf_format(client, signing_key, now):
    audit_record(event="request.created", request="vr_1", provider="acme", now=now)
    head = tree_head_publish(now=now.replace(second=37, microsecond=123456))
    payload = json.loads(base64.urlsafe_b64decode(head.token.split(".")[1] + "=="))
    assert payload["timestamp"] % 60_000 == 0 and payload["leaf_format"] == 2
    assert head.at.second == 0 and head.at.microsecond == 0
    assert client.get(PUBLIC[0]).json()["leaf_format"] == 2


def test_public_proofs_verify_with_the_rfc_9162_algorithms(client, signing_key, now):
    """Leaves rebuilt from the public commitments alone; inclusion checked with the stock client's RFC 9162 code,
    consistency with the §2.1.4.2 algorithm, between every pair of signed heads."""
    heads = []
    for i in range(13):
        audit_record(event="request.created", request=f"vr_{i}", provider="acme", now=now)
        if i in (2, 6, 7, 12):
            heads.append(tree_head_publish(now=now))
    size = heads[-1].tree_size
    entries = client.get(PUBLIC[1], {"start": 0, "end": size}).json()["entries"]
    leaves = [merkle.leaf_hash(bytes.fromhex(e["commitment"])) for e in entries]
    assert merkle.root(leaves).hex() == heads[-1].root_hash
    for index in range(size):
        proof = client.get(PUBLIC[2], {"index": index, "tree_size": size}).json()["inclusion_proof"]
        decoded = [base64.b64decode(p) for p in proof]
        assert verify_inclusion(leaves[index], index, size, decoded, bytes.fromhex(heads[-1].root_hash))
        assert not verify_inclusion(leaves[index - 1], index, size, decoded, bytes.fromhex(heads[-1].root_hash))
    for old in heads[:-1]:
        for new in heads:
            if new.tree_size <= old.tree_size:
                continue
            proof = client.get(PUBLIC[3], {"first": old.tree_size, "second": new.tree_size}).json()
            decoded = [base64.b64decode(p) for p in proof["consistency_proof"]]
            old_root, new_root = bytes.fromhex(old.root_hash), bytes.fromhex(new.root_hash)
            assert merkle.verify_consistency(old.tree_size, new.tree_size, old_root, new_root, decoded)
            assert not merkle.verify_consistency(old.tree_size, new.tree_size, new_root, new_root, decoded)


# --- Receipts: the opening of one's own entry ------------------------------------------------------------------


def _verifier(client):
    def from_test_client(url):
        return client.get(url.replace("http://testserver", "")).content, {"cache-control": "max-age=60"}

    return Verifier("http://testserver", "receipt", http=from_test_client)


@pytest.fixture
def destroyed(signing_key, now):
    audit_record(event="request.created", request="vr_r", provider="acme", now=now)
    entry = audit_record(event="evidence.destroyed", session="vs_receipt", reason="decided", count="2", now=now)
    audit_record(event="request.created", request="vr_after", provider="acme", now=now)
    return receipt(seq=entry.seq, now=now)


def test_a_receipt_is_the_opening_of_a_public_commitment(client, destroyed):
    assert destroyed["format"] == 2 and len(bytes.fromhex(destroyed["salt"])) == 32
    checked = verify_receipt(destroyed, _verifier(client))
    assert checked["event"] == "evidence.destroyed" and checked["refs"]["session"] == "vs_receipt"
    public = client.get(PUBLIC[1], {"start": destroyed["leaf_index"], "end": destroyed["leaf_index"] + 1}).json()
    assert public["entries"][0]["commitment"] == checked["commitment"]  # anyone holding the opening can match it
    assert "vs_receipt" not in json.dumps(public)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: {**r, "entry": r["entry"].replace('"decided"', '"deadline"')},
        lambda r: {**r, "salt": ("00" if r["salt"][:2] != "00" else "11") + r["salt"][2:]},
        lambda r: {**r, "salt": r["salt"][:-2]},
        lambda r: {**r, "leaf_index": r["leaf_index"] + 1},
        lambda r: {**r, "tree_size": r["tree_size"] + 1},
        lambda r: {**r, "inclusion_proof": [base64.b64encode(b"\0" * 32).decode(), *r["inclusion_proof"][1:]]},
        lambda r: {**r, "tree_head": r["tree_head"].rpartition(".")[0] + "." + r["tree_head"].rpartition(".")[2][::-1]},
        # A downgrade: the same entry presented as a format-1 receipt (no salt) against the format-2 head.
        lambda r: {k: v for k, v in r.items() if k not in ("format", "salt")},
        lambda r: {**r, "format": 3},
        lambda r: {**r, "format": True},
    ],
)
def test_a_tampered_receipt_fails_in_the_stock_client(client, destroyed, tamper):
    with pytest.raises(VerificationError) as failed:
        verify_receipt(tamper(destroyed), _verifier(client))
    assert failed.value.reason in ("not_included", "bad_signature", "malformed")


@pytest.mark.django_db(transaction=True)
def test_the_stock_cli_checks_a_receipt_and_refuses_a_tampered_one(public_url, signing_key, now, tmp_path, capsys):
    from idbroker_verifier.cli import main

    entry = audit_record(event="evidence.destroyed", session="vs_cli2", reason="decided", count="1", now=now)
    good = receipt(seq=entry.seq, now=now)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(good))
    assert main(["receipt", "--issuer", public_url, str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["refs"]["session"] == "vs_cli2" and printed["format"] == 2
    path.write_text(json.dumps({**good, "salt": "ab" * 32}))
    assert main(["receipt", "--issuer", public_url, str(path)]) == 1
    assert capsys.readouterr().out.strip() == "not_included"


# --- A log from before issue 10 --------------------------------------------------------------------------------


def _v1_head(size: int, now) -> TreeHead:
    """A tree head as the broker signed them before issue 10: leaves are the entries' bytes, no `leaf_format`."""
    rows = AuditEvent.objects.filter(seq__lte=size).order_by("seq")
    leaves = [merkle.leaf_hash(entry_body(r.seq, r.event, r.refs, r.at)) for r in rows]
    root = merkle.root(leaves).hex()
    payload = {"iss": "http://testserver", "tree_size": size, "root_hash": root, "timestamp": 0}
    signed = sign_tree_head(payload)
    return TreeHead.objects.create(
        tree_size=size, leaf_format=1, root_hash=root, at=now, token=signed.token, kid=signed.kid
    )


def test_the_migration_salts_and_indexes_old_entries_and_old_heads_keep_verifying(client, signing_key, now):
    migration = importlib.import_module("audit.migrations.0005_public_commitments")
    from django.apps import apps

    from audit.models import AdminSignIn

    for i in range(5):
        audit_record(event="request.created", request=f"vr_old_{i}", provider="acme", now=now)
    prev, at, refs = AuditEvent.objects.get(seq=6).hash, now.replace(microsecond=0), {"user": "3", "outcome": "ok"}
    AuditEvent.objects.create(
        seq=7, event="admin.signin", refs=refs, at=at, prev_hash=prev,
        hash=_entry_hash(prev, 7, "admin.signin", refs, at), salt="",
    )  # fmt: skip
    AuditEvent.objects.update(salt="")  # as before the migration
    AuditRef.objects.all().delete()
    old_head = _v1_head(6, now)
    v1_receipt = {
        "entry": entry_body(*AuditEvent.objects.filter(seq=3).values_list("seq", "event", "refs", "at").get()).decode(),
        "leaf_index": 2,
        "tree_size": 6,
        "inclusion_proof": [
            base64.b64encode(h).decode()
            for h in merkle.inclusion_proof(
                2, [merkle.leaf_hash(entry_body(r.seq, r.event, r.refs, r.at)) for r in AuditEvent.objects.all()[:6]]
            )
        ],
        "tree_head": old_head.token,
    }

    editor = SimpleNamespace(connection=connection)  # what the migration functions use of a schema editor
    migration.fill_salts(apps, editor)
    migration.index_refs(apps, editor)
    migration.copy_admin_signins(apps, editor)
    forget_leaves()

    salts = list(AuditEvent.objects.values_list("salt", flat=True))
    assert all(len(bytes.fromhex(s)) == 32 for s in salts) and len(set(salts)) == len(salts)
    assert set(AuditRef.objects.filter(key="request").values_list("value", flat=True)) == {
        f"vr_old_{i}" for i in range(5)
    }
    assert list(AdminSignIn.objects.values_list("outcome", "user_id")) == [("ok", 3)]

    new_head = tree_head_publish(now=now)  # the first head over commitments covers every old entry
    assert (new_head.leaf_format, new_head.tree_size) == (2, 7) and tree_head_latest() == new_head
    assert tree_heads_verify().ok  # the old head is still checked, against the entries themselves
    AuditEvent.objects.filter(seq=2).update(refs={"request": "vr_rewritten", "provider": "acme"})
    assert not tree_heads_verify().ok
    AuditEvent.objects.filter(seq=2).update(refs={"request": "vr_old_0", "provider": "acme"})

    # A receipt handed out before the migration still verifies with the new client; a format-1 receipt never
    # verifies against a format-2 head.
    assert verify_receipt(v1_receipt, _verifier(client))["format"] == 1
    with pytest.raises(VerificationError):
        verify_receipt({**v1_receipt, "tree_head": new_head.token, "tree_size": 7}, _verifier(client))
    # A head over commitments at the size of an old head is a different head, not a clash.
    _v1_head(7, now)
    assert TreeHead.objects.filter(tree_size=7).count() == 2 and tree_heads_verify().ok
    assert audit_verify().ok  # the hash chain does not cover salts: unchanged by the migration


def test_a_log_truncated_below_its_last_old_head_signs_nothing_and_raises_nothing(client, signing_key, now, caplog):
    """The first head over commitments checks the newest head over entries first. When entries below that head
    were deleted, the check itself used to crash (a Merkle root asked beyond the rebuilt tree), so the receipt page
    answered 500 and beat's task died, instead of refusing to sign and raising the `audit_tampered` alarm."""
    for i in range(5):
        audit_record(event="request.created", request=f"vr_old_{i}", provider="acme", now=now)
    _v1_head(6, now)
    AuditEvent.objects.filter(seq__gte=5).delete()  # an insider truncates the log below the published head
    forget_leaves()

    assert tree_head_publish(now=now) is None
    assert tree_head_latest() is None
    assert any(getattr(r, "code", "") == "audit_tampered" for r in caplog.records)
