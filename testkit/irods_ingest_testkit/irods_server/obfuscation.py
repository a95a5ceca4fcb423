"""Reverse the password scrambling clients apply when they send a new password.

``iadmin moduser ... password`` (and python-irodsclient's ``users.modify``) send the new
password scrambled with ``obfEncodeByKeyV2`` keyed by the admin's password and the
connection's signature; ``mkuser`` through USER_ADMIN_AN uses ``obfEncodeByKey`` keyed by the
admin's password (``lib/core/src/obf.cpp``). Both pad short passwords with a fixed string
that the catalog plugin strips again (``db_plugin.cpp``).
"""

from __future__ import annotations

import hashlib
from typing import Final

WHEEL: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!\"#$%&'()*+,-./"
PADDING: Final = "1gCBizHWbwIYyWLoysGzTe6SyzqFKMniZX05faZHWAwQKXf6Fs"
MAX_PASSWORD_LEN: Final = 50
V2_PREFIX_LEN: Final = 7  # one random character + "A.ObfV2"[1:10]


def _encoder_ring(key: str) -> bytes:
    first = hashlib.md5(key.ljust(100, "\0")[:100].encode("latin-1")).digest()
    second = hashlib.md5(first).digest()
    third = hashlib.md5(first + second).digest()
    return first + second + third + third


def unscramble(text: str, key: str, block_chaining: bool = False) -> str:
    ring = _encoder_ring(key)
    chain = 0
    out: list[str] = []
    for i, c in enumerate(text):
        if c in WHEEL:
            out.append(WHEEL[(WHEEL.index(c) - ring[i % 61] - chain) % len(WHEEL)])
            if block_chaining:
                chain = ord(c) & 0xFF
        else:
            out.append(c)
    return "".join(out)


def strip_padding(password: str) -> str:
    for length in range(len(password), -1, -1):
        lcopy = MAX_PASSWORD_LEN - 10 - length
        if lcopy > 15 and password == password[:length] + PADDING[:lcopy]:
            return password[:length]
    return password


def decode_v2(scrambled: str, admin_password: str, signature: str) -> str:
    key = (admin_password[:90] + signature[:100]).ljust(100, "\0")
    hashed = hashlib.md5(key.encode()).hexdigest()
    return strip_padding(unscramble(scrambled, hashed, block_chaining=True)[V2_PREFIX_LEN:])


def decode_with_key(scrambled: str, admin_password: str) -> str:
    return strip_padding(unscramble(scrambled, admin_password))
