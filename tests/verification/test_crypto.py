"""verification.crypto: data keys, evidence files, sealed records and keyed hashes (SPEC 3.1, 3.5)."""

import os
import stat

import pytest

from verification import crypto
from verification.crypto import DecryptionError

AAD = b"vs_session/ev_one/document_front"


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]


@pytest.fixture
def evidence_file(tmp_path):
    """A multi-chunk plaintext encrypted to a file: (key, path, plaintext)."""
    key, _ = crypto.new_data_key()
    plaintext = os.urandom(crypto.CHUNK * 2 + 123)
    path = tmp_path / "vs_session" / "ev_one.bin"
    chunks = (plaintext[i : i + crypto.CHUNK] for i in range(0, len(plaintext), crypto.CHUNK))
    assert crypto.encrypt_to_file(key, path, chunks, AAD) == len(plaintext)
    return key, path, plaintext


# --- Data keys ---------------------------------------------------------------------------------------------------


def test_a_wrapped_data_key_unwraps_to_the_same_key():
    key, wrapped = crypto.new_data_key()
    assert len(key) == 32
    assert wrapped != key and key not in wrapped
    assert crypto.unwrap_data_key(wrapped) == key


def test_every_verification_gets_a_fresh_data_key():
    first, second = crypto.new_data_key(), crypto.new_data_key()
    assert first[0] != second[0] and first[1] != second[1]


def test_a_data_key_wrapped_for_one_purpose_does_not_unwrap_for_another():
    _, wrapped = crypto.new_data_key("evidence")
    with pytest.raises(DecryptionError):
        crypto.unwrap_data_key(wrapped, "facts")


def test_a_tampered_wrapped_key_does_not_unwrap():
    _, wrapped = crypto.new_data_key()
    with pytest.raises(DecryptionError):
        crypto.unwrap_data_key(_flip(wrapped, 5))


@pytest.mark.parametrize("shredded", [None, b""])
def test_a_shredded_data_key_cannot_be_unwrapped(shredded):
    with pytest.raises(DecryptionError):
        crypto.unwrap_data_key(shredded)


# --- Evidence files ------------------------------------------------------------------------------------------------


def test_an_evidence_file_round_trips_across_chunks(evidence_file):
    key, path, plaintext = evidence_file
    assert crypto.decrypt_file(key, path, AAD) == plaintext


def test_an_evidence_file_holds_only_nonce_ciphertext_and_tag(evidence_file):
    _, path, plaintext = evidence_file
    blob = path.read_bytes()
    assert len(blob) == crypto.NONCE_BYTES + len(plaintext) + crypto.TAG_BYTES
    assert plaintext[:64] not in blob


def test_an_evidence_file_is_private_to_its_owner(evidence_file):
    _, path, _ = evidence_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_evidence_file_is_never_overwritten(evidence_file):
    key, path, plaintext = evidence_file
    with pytest.raises(FileExistsError):
        crypto.encrypt_to_file(key, path, [b"replacement"], AAD)
    assert crypto.decrypt_file(key, path, AAD) == plaintext


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_tampered_evidence_does_not_decrypt(evidence_file, where):
    key, path, _ = evidence_file
    blob = path.read_bytes()
    index = {"nonce": 3, "ciphertext": crypto.NONCE_BYTES + 1000, "tag": len(blob) - 2}[where]
    path.write_bytes(_flip(blob, index))
    with pytest.raises(DecryptionError):
        crypto.decrypt_file(key, path, AAD)


def test_evidence_moved_to_another_row_does_not_decrypt(evidence_file):
    key, path, _ = evidence_file
    with pytest.raises(DecryptionError):
        crypto.decrypt_file(key, path, b"vs_session/ev_two/document_front")
    with pytest.raises(DecryptionError):
        crypto.decrypt_file(key, path, b"vs_session/ev_one/selfie")


def test_evidence_does_not_decrypt_under_another_data_key(evidence_file):
    _, path, _ = evidence_file
    other, _ = crypto.new_data_key()
    with pytest.raises(DecryptionError):
        crypto.decrypt_file(other, path, AAD)


@pytest.mark.parametrize("keep", [0, crypto.NONCE_BYTES + crypto.TAG_BYTES - 1, 500])
def test_a_truncated_evidence_file_does_not_decrypt(evidence_file, keep):
    key, path, _ = evidence_file
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DecryptionError):
        crypto.decrypt_file(key, path, AAD)


def test_shredding_a_file_deletes_it_and_is_idempotent(evidence_file):
    _, path, _ = evidence_file
    assert crypto.shred_file(path) is True
    assert not path.exists()
    assert crypto.shred_file(path) is False


# --- Sealed records ------------------------------------------------------------------------------------------------


def test_a_sealed_record_round_trips():
    sealed, wrapped = crypto.seal(b'{"date_of_birth": "1990-04-12"}', purpose="facts", aad=b"subject-1")
    assert b"1990" not in sealed
    assert crypto.unseal(sealed, wrapped, purpose="facts", aad=b"subject-1") == b'{"date_of_birth": "1990-04-12"}'


def test_sealing_the_same_record_twice_gives_different_ciphertexts_and_keys():
    first = crypto.seal(b"same facts", purpose="facts", aad=b"s")
    second = crypto.seal(b"same facts", purpose="facts", aad=b"s")
    assert first[0] != second[0] and first[1] != second[1]


def test_a_tampered_sealed_record_does_not_unseal():
    sealed, wrapped = crypto.seal(b"facts", purpose="facts", aad=b"subject-1")
    with pytest.raises(DecryptionError):
        crypto.unseal(_flip(sealed, len(sealed) - 1), wrapped, purpose="facts", aad=b"subject-1")


def test_a_sealed_record_does_not_unseal_for_another_subject_or_purpose():
    sealed, wrapped = crypto.seal(b"facts", purpose="facts", aad=b"subject-1")
    with pytest.raises(DecryptionError):
        crypto.unseal(sealed, wrapped, purpose="facts", aad=b"subject-2")
    with pytest.raises(DecryptionError):
        crypto.unseal(sealed, wrapped, purpose="signing-key", aad=b"subject-1")


def test_a_sealed_record_whose_key_was_shredded_does_not_unseal():
    sealed, _ = crypto.seal(b"facts", purpose="facts", aad=b"subject-1")
    with pytest.raises(DecryptionError):
        crypto.unseal(sealed, None, purpose="facts", aad=b"subject-1")


def test_a_shredded_sealed_record_does_not_unseal():
    _, wrapped = crypto.seal(b"facts", purpose="facts", aad=b"subject-1")
    with pytest.raises(DecryptionError):
        crypto.unseal(None, wrapped, purpose="facts", aad=b"subject-1")


# --- Keyed hashes --------------------------------------------------------------------------------------------------


def test_keyed_hash_is_stable_and_reads_str_and_bytes_alike():
    assert crypto.keyed_hash("api-key", "secret") == crypto.keyed_hash("api-key", b"secret")
    assert len(crypto.keyed_hash("api-key", "secret")) == 64


def test_keyed_hash_differs_by_purpose():
    assert crypto.keyed_hash("api-key", "same") != crypto.keyed_hash("pairwise-sub", "same")
    assert crypto.keyed_hash("link-token", "same") != crypto.keyed_hash("api-key", "same")


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("ab", "c"), ("a", "bc")),
        (("abc",), ("a", "b", "c")),
        (("a", ""), ("a",)),
        (("",), ()),
        (("user-1", "acme"), ("user-1acme",)),
    ],
)
def test_keyed_hash_is_unambiguous_at_part_boundaries(left, right):
    assert crypto.keyed_hash("pairwise-sub", *left) != crypto.keyed_hash("pairwise-sub", *right)


def test_keyed_hash_is_not_a_plain_digest_of_its_input():
    import hashlib

    assert crypto.keyed_hash("link-token", "token") != hashlib.sha256(b"token").hexdigest()
    assert crypto.keyed_hash("link-token", "token") != hashlib.sha256(b"\x00\x00\x00\x05token").hexdigest()


def test_link_tokens_are_hashed_under_their_own_purpose():
    assert crypto.token_hash("tok") == crypto.keyed_hash("link-token", "tok")
    assert crypto.token_hash("tok") != crypto.token_hash("tok2")


def test_constant_time_equal_compares_values():
    assert crypto.constant_time_equal("abc", "abc")
    assert not crypto.constant_time_equal("abc", "abd")
    assert not crypto.constant_time_equal("abc", "abcd")
