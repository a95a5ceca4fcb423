"""The packed structures (``*_PI``) the server reads and writes, as typed Python values.

Requests are parsed by tag name, never by position: python-irodsclient leaves out
fields it does not set (``reconnFlag``, ``flags``...), and the real server's XML
unpacker tolerates that as well. Field lists follow ``lib/core/include/irods/rodsPackTable.h``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from irods_ingest_testkit.irods_server.errors import SYS_API_INPUT_ERR, IrodsError, ProtocolError
from irods_ingest_testkit.irods_server.framing import Node, element, parse_xml, struct_xml

KeyVal = dict[str, str]


def parse_body(body: bytes, expected: str) -> Node:
    if not body:
        raise IrodsError(SYS_API_INPUT_ERR, f"empty request, expected {expected}")
    root = parse_xml(body)
    if root.tag != expected:
        raise IrodsError(SYS_API_INPUT_ERR, f"expected {expected}, got {root.tag}")
    return root


def parse_kvp(node: Node | None, tag: str = "KeyValPair_PI") -> KeyVal:
    kv = node.find(tag) if node is not None else None
    if kv is None:
        return {}
    keys = [k.text for k in kv.find_all("keyWord")]
    values = [v.text for v in kv.find_all("svalue")]
    return dict(zip(keys, values, strict=False))


def kvp_xml(values: KeyVal, tag: str = "KeyValPair_PI") -> str:
    return struct_xml(
        tag,
        element("ssLen", len(values)),
        *(element("keyWord", k) for k in values),
        *(element("svalue", v) for v in values.values()),
    )


# ---------------------------------------------------------------- connection start-up


@dataclass
class StartupPack:
    irods_prot: int
    proxy_user: str
    proxy_zone: str
    client_user: str
    client_zone: str
    rel_version: str
    option: str

    @classmethod
    def parse(cls, body: bytes) -> StartupPack:
        root = parse_xml(body)
        if root.tag != "StartupPack_PI":
            raise ProtocolError(f"expected StartupPack_PI, got {root.tag}")
        proxy_user, proxy_zone = root.text_of("proxyUser"), root.text_of("proxyRcatZone")
        return cls(
            irods_prot=root.int_of("irodsProt"),
            proxy_user=proxy_user,
            proxy_zone=proxy_zone,
            client_user=root.text_of("clientUser") or proxy_user,
            client_zone=root.text_of("clientRcatZone") or proxy_zone,
            rel_version=root.text_of("relVersion"),
            option=root.text_of("option"),
        )


def version_xml(rel_version: str, api_version: str = "d", status: int = 0) -> bytes:
    return struct_xml(
        "Version_PI",
        element("status", status),
        element("relVersion", rel_version),
        element("apiVersion", api_version),
        element("reconnPort", 0),
        element("reconnAddr", ""),
        element("cookie", 400),
    ).encode()


def cs_neg_xml(result: str, status: int = 1) -> bytes:
    return struct_xml("CS_NEG_PI", element("status", status), element("result", result)).encode()


def rerror_xml(code: int, text: str) -> bytes:
    return struct_xml(
        "RError_PI",
        element("count", 1),
        struct_xml("RErrMsg_PI", element("status", code), element("msg", text)),
    ).encode()


# ---------------------------------------------------------------- JSON carried in BinBytesBuf


def parse_json_buf(body: bytes) -> dict[str, Any]:
    root = parse_body(body, "BinBytesBuf_PI") if body.lstrip().startswith(b"<BinBytesBuf") else None
    if root is None:
        root = parse_body(body, "BytesBuf_PI")
        raw = root.text_of("buf").encode()
    else:
        try:
            raw = base64.b64decode(root.text_of("buf"))
        except (binascii.Error, ValueError) as exc:
            raise IrodsError(SYS_API_INPUT_ERR, "BinBytesBuf is not base64") from exc
    try:
        value = json.loads(raw.rstrip(b"\0").decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IrodsError(SYS_API_INPUT_ERR, "BinBytesBuf does not carry JSON") from exc
    if not isinstance(value, dict):
        raise IrodsError(SYS_API_INPUT_ERR, "JSON request is not an object")
    return value


def json_buf_xml(value: object) -> bytes:
    raw = json.dumps(value).encode()
    return struct_xml(
        "BinBytesBuf_PI", element("buflen", len(raw)), element("buf", base64.b64encode(raw).decode())
    ).encode()


def str_pi_xml(text: str) -> bytes:
    return struct_xml("STR_PI", element("myStr", text)).encode()


# ---------------------------------------------------------------- data objects


@dataclass
class DataObjInp:
    obj_path: str
    create_mode: int = 0
    open_flags: int = 0
    offset: int = 0
    data_size: int = 0
    num_threads: int = 0
    opr_type: int = 0
    options: KeyVal = field(default_factory=dict)

    @classmethod
    def from_node(cls, root: Node) -> DataObjInp:
        return cls(
            obj_path=root.text_of("objPath"),
            create_mode=root.int_of("createMode"),
            open_flags=root.int_of("openFlags"),
            offset=root.int_of("offset"),
            data_size=root.int_of("dataSize"),
            num_threads=root.int_of("numThreads"),
            opr_type=root.int_of("oprType"),
            options=parse_kvp(root),
        )

    @classmethod
    def parse(cls, body: bytes) -> DataObjInp:
        return cls.from_node(parse_body(body, "DataObjInp_PI"))


@dataclass
class DataObjCopyInp:
    src: DataObjInp
    dest: DataObjInp

    @classmethod
    def parse(cls, body: bytes) -> DataObjCopyInp:
        root = parse_body(body, "DataObjCopyInp_PI")
        parts = root.find_all("DataObjInp_PI")
        if len(parts) != 2:
            raise IrodsError(SYS_API_INPUT_ERR, "DataObjCopyInp_PI needs two DataObjInp_PI")
        return cls(DataObjInp.from_node(parts[0]), DataObjInp.from_node(parts[1]))


@dataclass
class OpenedDataObjInp:
    l1_desc: int
    length: int
    whence: int
    offset: int
    options: KeyVal

    @classmethod
    def parse(cls, body: bytes) -> OpenedDataObjInp:
        root = parse_body(body, "OpenedDataObjInp_PI")
        return cls(
            l1_desc=root.int_of("l1descInx"),
            length=root.int_of("len"),
            whence=root.int_of("whence"),
            offset=root.int_of("offset"),
            options=parse_kvp(root),
        )


def lseek_out_xml(offset: int) -> bytes:
    return struct_xml("fileLseekOut_PI", element("offset", offset)).encode()


@dataclass
class ModDataObjMeta:
    obj_path: str
    resc_hier: str
    resc_name: str
    repl_num: int
    reg_param: KeyVal

    @classmethod
    def parse(cls, body: bytes) -> ModDataObjMeta:
        root = parse_body(body, "ModDataObjMeta_PI")
        info = root.find("DataObjInfo_PI")
        if info is None:
            raise IrodsError(SYS_API_INPUT_ERR, "ModDataObjMeta_PI without DataObjInfo_PI")
        # DataObjInfo_PI carries its own KeyValPair_PI; regParam is the top-level one.
        reg_param = parse_kvp(root)
        return cls(
            obj_path=info.text_of("objPath"),
            resc_hier=info.text_of("rescHier"),
            resc_name=info.text_of("rescName"),
            repl_num=info.int_of("replNum"),
            reg_param=reg_param,
        )


# ---------------------------------------------------------------- collections, metadata, ACLs


@dataclass
class CollInp:
    coll_name: str
    opr_type: int
    options: KeyVal

    @classmethod
    def parse(cls, body: bytes) -> CollInp:
        root = parse_body(body, "CollInpNew_PI")
        return cls(root.text_of("collName"), root.int_of("oprType"), parse_kvp(root))


@dataclass
class ArgsInp:
    """``ModAVUMetadataInp_PI``, ``generalAdminInp_PI`` and ``userAdminInp_PI``: arg0..arg9."""

    args: list[str]
    options: KeyVal

    @classmethod
    def parse(cls, body: bytes, tag: str) -> ArgsInp:
        root = parse_body(body, tag)
        return cls([root.text_of(f"arg{i}") for i in range(10)], parse_kvp(root))


@dataclass
class ModAccessControlInp:
    recursive: bool
    access_level: str
    user_name: str
    zone: str
    path: str

    @classmethod
    def parse(cls, body: bytes) -> ModAccessControlInp:
        root = parse_body(body, "modAccessControlInp_PI")
        return cls(
            recursive=root.int_of("recursiveFlag") != 0,
            access_level=root.text_of("accessLevel"),
            user_name=root.text_of("userName"),
            zone=root.text_of("zone"),
            path=root.text_of("path"),
        )


# ---------------------------------------------------------------- GenQuery


@dataclass
class GenQueryInp:
    max_rows: int
    continue_inx: int
    partial_start_index: int
    options: int
    keywords: KeyVal
    selects: list[tuple[int, int]]
    conditions: list[tuple[int, str]]

    @classmethod
    def parse(cls, body: bytes) -> GenQueryInp:
        root = parse_body(body, "GenQueryInp_PI")
        sel = root.find("InxIvalPair_PI")
        cond = root.find("InxValPair_PI")
        try:
            selects = (
                list(zip([int(e.text) for e in sel.find_all("inx")], [int(e.text) for e in sel.find_all("ivalue")], strict=False))
                if sel is not None
                else []
            )
            conditions = (
                list(zip([int(e.text) for e in cond.find_all("inx")], [e.text for e in cond.find_all("svalue")], strict=False))
                if cond is not None
                else []
            )
        except ValueError as exc:
            raise IrodsError(SYS_API_INPUT_ERR, "GenQuery column index is not a number") from exc
        return cls(
            max_rows=root.int_of("maxRows"),
            continue_inx=root.int_of("continueInx"),
            partial_start_index=root.int_of("partialStartIndex"),
            options=root.int_of("options"),
            keywords=parse_kvp(root),
            selects=selects,
            conditions=conditions,
        )


def gen_query_out_xml(
    columns: list[int], rows: list[list[str]], continue_inx: int, total_row_count: int
) -> bytes:
    parts = [
        element("rowCnt", len(rows)),
        element("attriCnt", len(columns)),
        element("continueInx", continue_inx),
        element("totalRowCount", total_row_count),
    ]
    for i, col in enumerate(columns):
        values = [r[i] for r in rows]
        reslen = max([len(v.encode()) for v in values] + [0]) + 1
        parts.append(
            struct_xml(
                "SqlResult_PI",
                element("attriInx", col),
                element("reslen", reslen),
                *(element("value", v) for v in values),
            )
        )
    return struct_xml("GenQueryOut_PI", *parts).encode()


@dataclass
class SpecificQueryInp:
    sql: str
    args: list[str]
    max_rows: int
    continue_inx: int

    @classmethod
    def parse(cls, body: bytes) -> SpecificQueryInp:
        root = parse_body(body, "specificQueryInp_PI")
        return cls(
            sql=root.text_of("sql"),
            args=[root.text_of(f"arg{i}") for i in range(1, 11) if root.find(f"arg{i}") is not None],
            max_rows=root.int_of("maxRows"),
            continue_inx=root.int_of("continueInx"),
        )


# ---------------------------------------------------------------- legacy authentication


def auth_challenge_xml(challenge: bytes) -> bytes:
    return struct_xml("authRequestOut_PI", element("challenge", base64.b64encode(challenge).decode())).encode()


@dataclass
class AuthResponseInp:
    response: bytes
    username: str

    @classmethod
    def parse(cls, body: bytes) -> AuthResponseInp:
        root = parse_body(body, "authResponseInp_PI")
        try:
            response = base64.b64decode(root.text_of("response"))
        except (binascii.Error, ValueError) as exc:
            raise IrodsError(SYS_API_INPUT_ERR, "auth response is not base64") from exc
        return cls(response, root.text_of("username"))
