"""iRODS message framing and the XML packing of the iRODS "XML protocol".

A message on the wire is a 4-byte big-endian header length, a ``MsgHeader_PI`` XML
header, then ``msgLen`` bytes of body XML, ``errorLen`` bytes of ``RError_PI`` and
``bsLen`` raw bytes (file data for reads and writes).

The body parser is deliberately not an XML parser: like the real server's packing
code (``packStruct.cpp``) it accepts any bytes between tags, including the control
characters that a file name may carry and that conforming XML parsers reject.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from irods_ingest_testkit.irods_server.errors import ProtocolError

MAX_HEADER_LEN = 1088  # rodsDef.h MAX_NAME_LEN-ish bound the server uses for a header
MAX_BODY_LEN = 256 * 1024 * 1024  # generous: writes carry up to 8 MiB (PRC) or 32 MiB in bs

RODS_CONNECT = "RODS_CONNECT"
RODS_VERSION = "RODS_VERSION"
RODS_API_REQ = "RODS_API_REQ"
RODS_API_REPLY = "RODS_API_REPLY"
RODS_DISCONNECT = "RODS_DISCONNECT"
RODS_CS_NEG_T = "RODS_CS_NEG_T"


@dataclass
class Message:
    """One framed iRODS message."""

    msg_type: str
    body: bytes = b""
    error: bytes = b""
    bs: bytes = b""
    int_info: int = 0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = sock.recv(min(remaining, 4 * 1024 * 1024))
        if not chunk:
            raise EOFError("peer closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _header_int(header: Node, name: str) -> int:
    try:
        return int(header.text_of(name) or "0")
    except ValueError as exc:
        raise ProtocolError(f"header field {name} is not an integer") from exc


def read_message(sock: socket.socket) -> Message:
    """Read one message; ``EOFError`` on a clean close, ``ProtocolError`` on garbage."""
    (header_len,) = struct.unpack(">i", _recv_exact(sock, 4))
    if header_len <= 0 or header_len > MAX_HEADER_LEN:
        raise ProtocolError(f"implausible header length {header_len}")
    header = parse_xml(_recv_exact(sock, header_len))
    if header.tag != "MsgHeader_PI":
        raise ProtocolError(f"expected MsgHeader_PI, got {header.tag}")
    lengths = [_header_int(header, k) for k in ("msgLen", "errorLen", "bsLen")]
    if any(n < 0 or n > MAX_BODY_LEN for n in lengths):
        raise ProtocolError(f"implausible message lengths {lengths}")
    msg_len, err_len, bs_len = lengths
    return Message(
        msg_type=header.text_of("type"),
        body=_recv_exact(sock, msg_len) if msg_len else b"",
        error=_recv_exact(sock, err_len) if err_len else b"",
        bs=_recv_exact(sock, bs_len) if bs_len else b"",
        int_info=_header_int(header, "intInfo"),
    )


def pack_message(message: Message) -> bytes:
    header = (
        f"<MsgHeader_PI>\n<type>{message.msg_type}</type>\n<msgLen>{len(message.body)}</msgLen>\n"
        f"<errorLen>{len(message.error)}</errorLen>\n<bsLen>{len(message.bs)}</bsLen>\n"
        f"<intInfo>{message.int_info}</intInfo>\n</MsgHeader_PI>\n"
    ).encode()
    return struct.pack(">i", len(header)) + header + message.body + message.error + message.bs


# ---------------------------------------------------------------- tolerant XML reading

_TOKEN = re.compile(rb"<(/?)([A-Za-z_][A-Za-z0-9_.\-]*)\s*(/?)>")
_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _unescape(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("#x"):
            return chr(int(name[2:], 16))
        if name.startswith("#"):
            return chr(int(name[1:]))
        return _NAMED[name]

    return _ENTITY.sub(repl, text) if "&" in text else text


@dataclass
class Node:
    """An element of a packed structure: a tag, its text, and its child elements."""

    tag: str
    text: str = ""
    children: list[Node] = field(default_factory=list)

    def find(self, tag: str) -> Node | None:
        for child in self.children:
            if child.tag == tag:
                return child
        return None

    def find_all(self, tag: str) -> list[Node]:
        return [c for c in self.children if c.tag == tag]

    def text_of(self, tag: str, default: str = "") -> str:
        child = self.find(tag)
        return default if child is None else child.text

    def int_of(self, tag: str, default: int = 0) -> int:
        child = self.find(tag)
        if child is None or not child.text.strip():
            return default
        try:
            return int(float(child.text)) if "." in child.text else int(child.text)
        except ValueError as exc:
            raise ProtocolError(f"<{tag}> is not a number: {child.text[:40]!r}") from exc

    def __iter__(self) -> Iterator[Node]:
        return iter(self.children)


def parse_xml(data: bytes) -> Node:
    """Parse the packStruct XML subset: nested elements without attributes, entity escapes."""
    data = data.rstrip(b"\0")
    root: Node | None = None
    stack: list[Node] = []
    pos = 0
    text_start = 0
    for m in _TOKEN.finditer(data):
        closing, name, selfclosing = m.group(1), m.group(2).decode("ascii"), m.group(3)
        if closing:
            if not stack or stack[-1].tag != name:
                raise ProtocolError(f"unbalanced closing tag </{name}>")
            node = stack.pop()
            if not node.children:
                try:
                    node.text = _unescape(data[text_start : m.start()].decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise ProtocolError("element text is not UTF-8") from exc
            if not stack:
                root = node
                pos = m.end()
                break
        else:
            node = Node(name)
            if stack:
                stack[-1].children.append(node)
            elif root is not None:
                raise ProtocolError("more than one root element")
            if selfclosing:
                if not stack:
                    return node
            else:
                stack.append(node)
        text_start = m.end()
        pos = m.end()
    if root is None or stack:
        raise ProtocolError("truncated or empty XML message")
    if data[pos:].strip():
        raise ProtocolError("trailing bytes after the root element")
    return root


# ---------------------------------------------------------------- XML writing


def escape(value: object) -> str:
    """Escape as the server's XML packer does (``&<>"'`` and the back-tick rule of 4.2.9+)."""
    return (
        str(value)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def element(name: str, value: object) -> str:
    return f"<{name}>{escape(value)}</{name}>\n"


def struct_xml(name: str, *parts: str) -> str:
    return f"<{name}>\n{''.join(parts)}</{name}>\n"
