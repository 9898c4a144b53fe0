"""The audit log as a transparency log (issue 6, part 1-2; leaves are salted commitments since issue 10): RFC 9162
Merkle hashing, signed tree heads, inclusion and consistency proofs over HTTP, detection of a rewritten log, and
deletion receipts checked offline. What the public can and cannot read is in test_public_log_privacy.py."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from idbroker_verifier import VerificationError, Verifier, verify_receipt
from jwcrypto import jwk, jws

from audit import merkle
from audit.models import AuditEvent, TreeHead
from audit.services import GENESIS, audit_record, audit_verify
from audit.transparency import commitment, tree_head_publish, tree_heads_verify
from tests import journey

pytestmark = pytest.mark.django_db

# Inputs of the Certificate Transparency reference tests and the tree roots every implementation agrees on.
CT_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def test_tree_roots_match_the_certificate_transparency_reference_vectors():
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in CT_INPUTS]
    assert {n: merkle.root(leaves[:n]).hex() for n in CT_ROOTS} == CT_ROOTS
    assert merkle.root([]) == hashlib.sha256(b"").digest()


def test_every_inclusion_and_consistency_proof_verifies_and_a_changed_one_does_not():
    for size in range(1, 34):
        leaves = [merkle.leaf_hash(bytes([i])) for i in range(size)]
        root = merkle.root(leaves)
        for index in range(size):
            proof = merkle.inclusion_proof(index, leaves)
            assert merkle.verify_inclusion(leaves[index], index, size, proof, root)
            assert len(proof) <= size.bit_length()  # logarithmic
            assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), index, size, proof, root)
            if proof:
                assert not merkle.verify_inclusion(leaves[index], index, size, proof[:-1], root)
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(old, leaves)
            assert merkle.verify_consistency(old, size, merkle.root(leaves[:old]), root, proof)
            if old < size:
                assert not merkle.verify_consistency(old, size, merkle.leaf_hash(b"other"), root, proof)


@pytest.fixture
def log(now, signing_key):
    """Eight entries: the signing key's creation, then seven requests."""
    return [
        audit_record(event="request.created", request=f"vr_{i}", now=now - timedelta(minutes=30 - i)) for i in range(7)
    ]


def test_a_tree_head_is_signed_with_the_published_key_and_covers_the_log(client, log, now):
    head = tree_head_publish(now=now)
    assert head.tree_size == 8
    keys = jwk.JWKSet.from_json(json.dumps(client.get("/.well-known/jwks.json").json()))
    token = jws.JWS()
    token.deserialize(head.token)
    token.verify(keys)  # an independent JOSE implementation accepts the signature
    payload = json.loads(token.payload)
    assert payload["tree_size"] == 8 and payload["root_hash"] == head.root_hash
    assert json.loads(token.objects["protected"])["typ"] == "sth+jwt"
    assert tree_head_publish(now=now) == head  # nothing new: no new head
    served = client.get("/transparency/tree-head").json()
    assert served["tree_size"] == 8 and served["token"] == head.token


def test_proofs_served_over_http_verify_against_signed_heads(client, log, now, signing_key):
    small = tree_head_publish(now=now)
    audit_record(event="request.created", request="vr_late", now=now)
    big = tree_head_publish(now=now)
    assert (small.tree_size, big.tree_size) == (8, 9)
    entries = client.get("/transparency/entries", {"start": 0, "end": 9}).json()["entries"]
    assert [e["index"] for e in entries] == list(range(9))
    leaves = [merkle.leaf_hash(bytes.fromhex(e["commitment"])) for e in entries]
    assert merkle.root(leaves).hex() == big.root_hash  # anyone can rebuild the tree from the commitments
    proof = client.get("/transparency/proof/inclusion", {"index": 3, "tree_size": 9}).json()["inclusion_proof"]
    assert merkle.verify_inclusion(leaves[3], 3, 9, [base64.b64decode(p) for p in proof], bytes.fromhex(big.root_hash))
    proof = client.get("/transparency/proof/consistency", {"first": 8, "second": 9}).json()["consistency_proof"]
    assert merkle.verify_consistency(
        8, 9, bytes.fromhex(small.root_hash), bytes.fromhex(big.root_hash), [base64.b64decode(p) for p in proof]
    )


@pytest.mark.parametrize(
    "query",
    [
        ("/transparency/proof/inclusion", {"index": "x", "tree_size": 3}),
        ("/transparency/proof/inclusion", {"index": 5, "tree_size": 3}),
        ("/transparency/proof/inclusion", {"index": 0, "tree_size": 999}),
        ("/transparency/proof/consistency", {"first": 0, "second": 3}),
        ("/transparency/proof/consistency", {"first": 4, "second": 3}),
        ("/transparency/entries", {"start": 5, "end": 2}),
        ("/transparency/entries", {"start": "-1" + "0" * 40, "end": 2}),
    ],
)
def test_bad_proof_requests_get_a_clear_400(client, log, query):
    response = client.get(*query)
    assert response.status_code == 400 and response.json()["code"] in ("invalid_parameters", "outside_the_log")


def test_a_log_rewritten_with_a_consistent_chain_still_contradicts_its_signed_head(log, now, signing_key):
    """An insider edits an entry and recomputes every hash after it: the chain verifies again, but the tree head
    the broker already signed and published does not."""
    tree_head_publish(now=now)
    rows = list(AuditEvent.objects.order_by("seq"))
    rows[2].refs = {"request": "vr_rewritten"}
    prev = GENESIS
    from audit.services import _entry_hash

    with connection.cursor() as cursor:
        for row in rows:
            digest = _entry_hash(prev, row.seq, row.event, row.refs, row.at)
            cursor.execute(
                "UPDATE audit_auditevent SET refs = %s, prev_hash = %s, hash = %s WHERE seq = %s",
                [json.dumps(row.refs), prev, digest, row.seq],
            )
            prev = digest
    assert audit_verify().ok  # the chain alone is fooled
    check = tree_heads_verify()
    assert not check.ok and check.bad_tree_size == 8
    with pytest.raises(CommandError, match="tree head"):
        call_command("verify_audit_log")


def test_truncating_the_log_is_detected_by_its_tree_head(log, now, signing_key):
    tree_head_publish(now=now)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq > 5")
    assert audit_verify().ok  # five consistent entries remain
    assert not tree_heads_verify().ok


def test_a_clean_log_verifies_with_its_heads(log, now, signing_key):
    tree_head_publish(now=now)
    audit_record(event="request.created", request="vr_more", now=now)
    tree_head_publish(now=now)
    from io import StringIO

    out = StringIO()
    call_command("verify_audit_log", stdout=out)
    assert "9 entries, 2 signed tree heads match" in out.getvalue()


# --- Deletion receipts -------------------------------------------------------------------------------------------


def _verifier(client):
    def from_test_client(url):
        return client.get(url.replace("http://testserver", "")).content, {"cache-control": "max-age=60"}

    return Verifier("http://testserver", "receipt", http=from_test_client)


@pytest.mark.django_db(transaction=True)
def test_a_deletion_receipt_verifies_offline_and_a_forged_one_does_not(acme, signing_key):
    trip, final = journey.complete(acme, ["age_over_18"], scenario="approved")
    assert final["status"] == "completed"
    page = trip.browser.get("/verify/result")
    assert b"download your deletion receipt" in page.content
    response = trip.browser.get("/verify/receipt")
    assert response["Content-Disposition"].startswith("attachment")
    receipt = json.loads(response.content)
    entry = verify_receipt(receipt, _verifier(trip.browser))
    assert entry["event"] == "evidence.destroyed" and set(entry["refs"]) == {"session", "reason", "count"}

    forged = {**receipt, "entry": receipt["entry"].replace('"decided"', '"deadline"')}
    with pytest.raises(VerificationError) as failed:
        verify_receipt(forged, _verifier(trip.browser))
    assert failed.value.reason == "not_included"
    moved = {**receipt, "leaf_index": receipt["leaf_index"] + 1}
    with pytest.raises(VerificationError):
        verify_receipt(moved, _verifier(trip.browser))
    head, _, signature = receipt["tree_head"].rpartition(".")
    resigned = {**receipt, "tree_head": head + "." + signature[::-1]}
    with pytest.raises(VerificationError) as failed:
        verify_receipt(resigned, _verifier(trip.browser))
    assert failed.value.reason in ("bad_signature", "malformed")


def test_no_receipt_before_anything_was_destroyed(client):
    assert client.get("/verify/receipt").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_cli_checks_a_receipt_against_the_live_issuer(public_url, signing_key, now, tmp_path, capsys):
    from idbroker_verifier.cli import main

    from audit.transparency import receipt

    entry = audit_record(event="evidence.destroyed", session="vs_cli", reason="decided", count="2", now=now)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt(seq=entry.seq, now=now)))
    assert main(["receipt", "--issuer", public_url, str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["refs"]["session"] == "vs_cli"
    assert main(["receipt", "--issuer", "https://another-broker.example", str(path)]) == 1


def test_the_stored_subtree_tree_gives_the_same_roots_and_proofs_as_the_rfc_recursion():
    leaves = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(300)]
    tree = merkle.Tree()
    for leaf in leaves:
        tree.append(leaf)
    for size in [*range(1, 40), 63, 64, 65, 127, 128, 129, 255, 256, 257, 300]:
        assert tree.root(size) == merkle.root(leaves[:size])
        for index in range(0, size, max(1, size // 9)):
            assert tree.inclusion_proof(index, size) == merkle.inclusion_proof(index, leaves[:size])
        for old in range(1, size + 1, max(1, size // 7)):
            assert tree.consistency_proof(old, size) == merkle.consistency_proof(old, leaves[:size])


def test_the_hourly_check_records_its_result_and_logs_an_error_when_the_log_was_rewritten(log, now, caplog):
    from audit.models import IntegrityCheck
    from audit.tasks import verify_log

    assert verify_log() is True
    AuditEvent.objects.filter(seq=3).update(refs={"request": "vr_rewritten"})
    assert verify_log() is False
    latest = IntegrityCheck.objects.first()
    assert (latest.ok, latest.first_bad_seq) == (False, 3)
    assert any(r.levelname == "ERROR" and "integrity" in r.getMessage() for r in caplog.records)


def test_rewriting_the_stored_root_too_is_caught_by_the_heads_signature(log, now):
    """The insider also rewrites the tree head's `root_hash` column to match the edited log: the signed token
    still names the old root."""
    head = tree_head_publish(now=now)
    AuditEvent.objects.filter(seq=4).update(refs={"request": "vr_rewritten"})
    rows = list(AuditEvent.objects.order_by("seq"))
    prev = GENESIS
    from audit.services import _entry_hash

    for row in rows:
        digest = _entry_hash(prev, row.seq, row.event, row.refs, row.at)
        AuditEvent.objects.filter(pk=row.pk).update(prev_hash=prev, hash=digest)
        prev = digest
    forged_root = merkle.root([merkle.leaf_hash(commitment(r.seq, r.event, r.refs, r.at, r.salt)) for r in rows]).hex()
    TreeHead.objects.filter(pk=head.pk).update(root_hash=forged_root)
    assert audit_verify().ok
    check = tree_heads_verify()
    assert not check.ok and "differs from what was signed" in check.reason


def test_a_log_that_lost_entries_is_not_signed_again(log, now, caplog):
    tree_head_publish(now=now)
    AuditEvent.objects.filter(seq=8).delete()  # a restore that lost the newest entry...
    audit_record(event="request.created", request="vr_after_restore", now=now)  # ...then the log goes on
    audit_record(event="request.created", request="vr_after_restore_2", now=now)
    from audit.transparency import forget_leaves

    forget_leaves()
    assert tree_head_publish(now=now).tree_size == 8  # the old head stands; no fork was signed
    assert TreeHead.objects.count() == 1
    assert any(r.levelname == "ERROR" for r in caplog.records)


def test_the_receipt_is_for_the_last_destruction_and_only_once_nothing_is_held(acme, now, signing_key):
    from tests.verification.support import open_session, store_both
    from verification import services
    from verification.views import _destruction_entry

    opened = open_session(acme.provider, now=now)
    store_both(opened, now=now)
    services.evidence_destroy(session_id=opened.session.pk, now=now, reason="decided")  # a retry's first photos
    first = _destruction_entry(opened.refresh().session)
    store_both(opened, now=now)  # new photos are held again
    assert _destruction_entry(opened.refresh().session) is None  # no receipt while anything is held
    services.evidence_destroy(session_id=opened.session.pk, now=now, reason="decided")
    last = _destruction_entry(opened.refresh().session)
    assert last is not None and last.seq > first.seq


def test_the_cli_says_malformed_for_a_missing_file(capsys):
    from idbroker_verifier.cli import main

    assert main(["receipt", "--issuer", "https://broker.example", "/nonexistent/receipt.json"]) == 1
    assert capsys.readouterr().out.strip() == "malformed"


def test_a_key_that_signed_a_tree_head_stays_published_after_rotation(log, now, client):
    from attestations.models import SigningKey
    from attestations.signing import signing_key_rotate, signing_keys_retire_expired

    head = tree_head_publish(now=now)
    old = SigningKey.objects.get(kid=head.kid)
    signing_key_rotate(now=now)
    signing_keys_retire_expired(now=now + timedelta(days=365))
    old.refresh_from_db()
    assert old.status != SigningKey.Status.RETIRED  # receipts under that head keep verifying
    assert head.kid in {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}


def test_a_tree_head_whose_signature_was_replaced_is_reported(log, now):
    head = tree_head_publish(now=now)
    body, _, signature = head.token.rpartition(".")
    TreeHead.objects.filter(pk=head.pk).update(token=f"{body}.{signature[::-1]}")
    check = tree_heads_verify()
    assert not check.ok and "no valid signature" in check.reason
