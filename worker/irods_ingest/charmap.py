"""Character mapping of logical names, compatible with the incumbent's ``char_map_util``.

A handler's ``character_map()`` returns ``{key: replacement}`` where a key is a single
character, a tuple of characters, a compiled regex or a predicate. Each path element is
translated separately; when a name changes, a suffix encoding the replaced characters
(or a SHA-224 digest when that would be longer) keeps different source names apart, as
the incumbent does, so logical paths stay the same after migrating.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from collections.abc import Callable
from typing import Any

_SEPARATORS = "-~_"
_RADIX_BASE = string.digits + string.ascii_letters
_DIGEST_BYTES = hashlib.sha224().digest_size


def translate_string(text: str, mapping: dict[Any, Any]) -> str:
    for key, value in mapping.items():
        if isinstance(key, tuple):
            text = text.translate({ord(k): value for k in key if value is not None})
        elif isinstance(key, re.Pattern):
            text = key.sub(value, text)
        elif isinstance(key, str):
            if value is not None:
                text = text.translate({ord(key): value})
        elif callable(key):
            predicate: Callable[[str], bool] = key
            text = "".join(value if predicate(c) else c for c in text)
    return text


def _allowed(chars: str, mapping: dict[Any, Any]) -> str:
    """The characters of ``chars`` that the mapping leaves alone."""
    mapped = translate_string(chars, mapping)
    return "".join(a for a, b in zip(chars, mapped, strict=False) if a == b)


def _suffix(diff: bytes, mapping: dict[Any, Any]) -> str:
    if not diff:
        return ""
    radix = _allowed(_RADIX_BASE, mapping)
    separator = _allowed(_SEPARATORS, mapping)[:1]
    number = functools.reduce(lambda a, b: (a << 8) | b, diff)
    out = separator
    while number:
        number, digit = divmod(number, len(radix))
        out += radix[digit]
    return out


def translate_element(name: str, mapping: dict[Any, Any]) -> str:
    translated = translate_string(name, mapping)
    if translated == name:
        return name
    # As the incumbent: each replaced character contributes its index and itself.
    changed = b"".join(
        chr(i).encode("utf8") + a.encode("utf8")
        for i, (a, b) in enumerate(zip(name, translated, strict=False))
        if a != b
    )
    if len(changed) >= _DIGEST_BYTES:
        changed = hashlib.sha224(name.encode("utf8")).digest()
    return translated + _suffix(changed, mapping)


def translate_path(path: str, mapping: dict[Any, Any]) -> str:
    elements = []
    for index, element in enumerate(path.split("/")):
        if element == "":
            if index == 0:
                elements.append("")
            continue
        elements.append(translate_element(element, mapping))
    return "/".join(elements)
