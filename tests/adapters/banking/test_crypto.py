"""Provider secrets at rest: AES-GCM round trip, tampering, row binding, key rotation."""

from __future__ import annotations

import pytest

from adapters.crypto import (
    DEV_SECRET_KEYRING,
    SecretBox,
    SecretDecryptionError,
    SecretText,
    generate_keyring_entry,
    link_associated_data,
)

TOKEN = SecretText("access-sandbox-item-1")


def test_round_trip_with_a_key_id_byte_and_a_fresh_nonce() -> None:
    box = SecretBox.from_keyring(generate_keyring_entry(3))
    aad = link_associated_data(1, 10)

    first, second = box.encrypt(TOKEN, aad), box.encrypt(TOKEN, aad)

    assert box.decrypt(first, aad) == TOKEN
    assert first[0] == 3
    assert first != second  # random nonce per encryption
    assert TOKEN.reveal().encode() not in first


@pytest.mark.parametrize("position", [0, 1, 13, -1], ids=["key_id", "nonce", "body", "tag"])
def test_any_flipped_byte_fails_authentication(position: int) -> None:
    box = SecretBox.from_keyring(f"{generate_keyring_entry(0)},{generate_keyring_entry(1)}")
    aad = link_associated_data(1, 10)
    sealed = bytearray(box.encrypt(TOKEN, aad))
    sealed[position] ^= 0x01

    with pytest.raises(SecretDecryptionError):
        box.decrypt(bytes(sealed), aad)


@pytest.mark.parametrize(
    ("tenant_id", "link_id"), [(2, 10), (1, 11)], ids=["other_tenant", "other_link"]
)
def test_a_secret_moved_to_another_row_does_not_decrypt(tenant_id: int, link_id: int) -> None:
    box = SecretBox.from_keyring(DEV_SECRET_KEYRING)
    sealed = box.encrypt(TOKEN, link_associated_data(1, 10))

    with pytest.raises(SecretDecryptionError):
        box.decrypt(sealed, link_associated_data(tenant_id, link_id))


def test_rotation_keeps_old_secrets_readable_and_seals_new_ones_with_the_current_key() -> None:
    old_entry, new_entry = generate_keyring_entry(1), generate_keyring_entry(2)
    aad = link_associated_data(1, 10)
    sealed_before = SecretBox.from_keyring(old_entry).encrypt(TOKEN, aad)

    rotated = SecretBox.from_keyring(f"{new_entry},{old_entry}")

    assert rotated.decrypt(sealed_before, aad) == TOKEN
    assert rotated.needs_rotation(sealed_before)
    assert rotated.encrypt(TOKEN, aad)[0] == 2
    with pytest.raises(SecretDecryptionError, match="no key with id 1"):
        SecretBox.from_keyring(new_entry).decrypt(sealed_before, aad)


@pytest.mark.parametrize(
    "keyring",
    ["", "1", "x:abc", "1:c2hvcnQ=", f"{generate_keyring_entry(1)},{generate_keyring_entry(1)}"],
    ids=["empty", "no_key", "bad_id", "short_key", "duplicate_id"],
)
def test_malformed_keyrings_are_refused(keyring: str) -> None:
    with pytest.raises(ValueError, match="key"):
        SecretBox.from_keyring(keyring)


def test_secrets_and_keys_never_show_in_repr_or_str() -> None:
    entry = generate_keyring_entry(1)
    box = SecretBox.from_keyring(entry)

    assert "access-sandbox" not in repr(TOKEN) + str(TOKEN) + f"{TOKEN}"
    assert entry.partition(":")[2] not in repr(box)
