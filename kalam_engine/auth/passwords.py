"""Password hashing: bcrypt only; the clear text is never stored.

``BCRYPT_COST`` is KalamDB's cost 12. Tests may lower it (e.g. to 4) to stay fast; hashes made
with any cost verify, because bcrypt stores the cost inside the hash.
"""

from __future__ import annotations

import bcrypt

from kalam_engine.model.errors import InvalidParameterError

BCRYPT_COST = 12
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 72  # bcrypt reads at most 72 bytes


def validate_password(password: str) -> bytes:
    """The password as UTF-8 bytes, or a clear INVALID_PARAMETER error."""
    if not isinstance(password, str):
        raise InvalidParameterError("A password must be a string")
    if "\x00" in password:
        raise InvalidParameterError("A password may not contain NUL characters")
    data = password.encode("utf-8")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidParameterError(
            f"The password is too short ({len(password)} characters)",
            hint=f"use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    if len(data) > MAX_PASSWORD_LENGTH:
        raise InvalidParameterError(
            f"The password is too long ({len(data)} bytes in UTF-8)",
            hint=f"use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters; bcrypt "
                 f"ignores everything after {MAX_PASSWORD_LENGTH} bytes")
    return data


def hash_password(password: str) -> str:
    """A bcrypt hash (``$2b$<cost>$...``) of a valid password."""
    data = validate_password(password)
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds=BCRYPT_COST)).decode("ascii")


def verify_password(password: str, password_hash: str | None) -> bool:
    """True if ``password`` matches ``password_hash``; False for a missing or malformed hash."""
    if not password_hash or not isinstance(password, str):
        return False
    data = password.encode("utf-8")
    if len(data) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return bcrypt.checkpw(data, password_hash.encode("ascii"))
    except ValueError:
        return False
