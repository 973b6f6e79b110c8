"""Signing secrets: how they are made, and how they are kept at rest.

A secret is ``whsec_`` + base64 of 32 random bytes, the Standard Webhooks format that
``standardwebhooks.Webhook(secret)`` (and every other Standard Webhooks library) reads.

HMAC needs the secret itself, so it cannot be hashed like a password; it is encrypted with
Fernet (``cryptography``) under ``SALESLINE_WEBHOOKS_SECRET_KEYS`` instead. The first key
encrypts, every key decrypts, so a key is rotated by prepending a new one. A database dump,
and the idempotency-key table that keeps a creation response for retries, hold only
ciphertext.
"""

from __future__ import annotations

import base64
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class SecretBox:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except InvalidToken:
            # Never include the token or key material.
            raise ValueError("a webhook secret cannot be decrypted with SALESLINE_WEBHOOKS_SECRET_KEYS") from None


@lru_cache(maxsize=8)
def secret_box(keys: tuple[str, ...]) -> SecretBox:
    return SecretBox(keys)
