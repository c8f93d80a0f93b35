"""Provider secrets at rest: AES-256-GCM with a key id, bound to the row that holds them.

Stored layout (``provider_links.secret_encrypted``)::

    key id (1 byte) | nonce (12 bytes) | ciphertext + GCM tag (16 bytes)

The key id names the key of a keyring, so keys rotate without rewriting rows at once: new
secrets use the current key, old rows still decrypt with theirs. The associated data binds a
ciphertext to its tenant and provider link, so a value copied onto another row (or tenant)
fails to decrypt instead of handing over someone else's token.

Keyring text (from settings): ``"2:<base64 key>,1:<base64 key>"`` — the first entry encrypts,
every entry decrypts; keys are 32 random bytes, standard or URL-safe base64.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DEV_SECRET_KEYRING",
    "SecretBox",
    "SecretDecryptionError",
    "SecretText",
    "generate_keyring_entry",
    "link_associated_data",
]

# Development only (load_settings refuses it elsewhere): the embedded default needs a key.
DEV_SECRET_KEYRING = "1:ZmluYW5jZS1nYXRld2F5LWRldi1rZXktbm90LXByb2Q="  # noqa: S105
_NONCE_BYTES = 12
_KEY_BYTES = 32


class SecretText:
    """A secret in clear (a signing key, an access token): never shows itself in repr, str or
    logs, and refuses to be pickled."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretText('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretText) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SecretText is not picklable")


class SecretDecryptionError(Exception):
    """The stored secret is corrupt, tampered with, moved to another row, or its key is gone."""


def link_associated_data(tenant_id: int, link_id: int) -> bytes:
    """The associated data that binds a secret to one provider link of one tenant."""
    return f"provider_links:tenant={tenant_id}:link={link_id}".encode()


def _decode_key(text: str) -> bytes:
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        key = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise ValueError("secret encryption keys must be base64") from None
    if len(key) != _KEY_BYTES:
        raise ValueError(f"secret encryption keys must be {_KEY_BYTES} bytes, got {len(key)}")
    return key


def generate_keyring_entry(key_id: int) -> str:
    """A fresh keyring entry ``"<id>:<base64 key>"`` for settings (`gateway` operators)."""
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode()}"


class SecretBox:
    """Encrypts and decrypts provider secrets with a keyring; holds no secret in its repr."""

    __slots__ = ("_ciphers", "_current")

    def __init__(self, keys: Mapping[int, bytes], current_key_id: int) -> None:
        if current_key_id not in keys:
            raise ValueError("the current key id must be in the keyring")
        for key_id, key in keys.items():
            if not 0 <= key_id <= 255:
                raise ValueError("key ids are 0..255 (one byte)")
            if len(key) != _KEY_BYTES:
                raise ValueError(f"keys must be {_KEY_BYTES} bytes")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current_key_id

    @classmethod
    def from_keyring(cls, text: str) -> SecretBox:
        """Parse ``"2:<key>,1:<key>"``; the first entry is the current (encrypting) key."""
        keys: dict[int, bytes] = {}
        current: int | None = None
        for entry in filter(None, (part.strip() for part in text.split(","))):
            key_id_text, separator, key_text = entry.partition(":")
            if not separator or not key_id_text.isdigit():
                raise ValueError("keyring entries look like '<key id>:<base64 key>'")
            key_id = int(key_id_text)
            if key_id in keys:
                raise ValueError(f"key id {key_id} appears twice in the keyring")
            keys[key_id] = _decode_key(key_text)
            current = key_id if current is None else current
        if current is None:
            raise ValueError("the keyring is empty")
        return cls(keys, current)

    @property
    def current_key_id(self) -> int:
        return self._current

    def __repr__(self) -> str:
        return f"SecretBox(key_ids={sorted(self._ciphers)}, current={self._current})"

    def encrypt(self, secret: SecretText, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(
            nonce, secret.reveal().encode(), associated_data
        )
        return bytes([self._current]) + nonce + sealed

    def decrypt(self, stored: bytes, associated_data: bytes) -> SecretText:
        """Raises SecretDecryptionError (never the key or the plaintext) when it cannot."""
        if len(stored) < 1 + _NONCE_BYTES + 16:
            raise SecretDecryptionError("stored secret is truncated")
        cipher = self._ciphers.get(stored[0])
        if cipher is None:
            raise SecretDecryptionError(f"no key with id {stored[0]} in the keyring")
        nonce, sealed = stored[1 : 1 + _NONCE_BYTES], stored[1 + _NONCE_BYTES :]
        try:
            clear = cipher.decrypt(nonce, sealed, associated_data)
        except InvalidTag:
            raise SecretDecryptionError("stored secret failed authentication") from None
        return SecretText(clear.decode())

    def needs_rotation(self, stored: bytes) -> bool:
        """True when `stored` was sealed with a key other than the current one."""
        return bool(stored) and stored[0] != self._current
