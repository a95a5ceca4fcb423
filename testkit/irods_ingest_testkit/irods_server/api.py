"""API numbers (``lib/api/include/irods/apiNumberData.h``) mapped to their handlers.

A handler takes the connection's :class:`Agent` and the request message and returns a
:class:`Reply`; it raises :class:`IrodsError` for an iRODS error reply. Request structures
follow ``apiTable.hpp``; replies carry exactly what python-irodsclient reads back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Final

from irods_ingest_testkit.irods_server.admin import Admin
from irods_ingest_testkit.irods_server.agent import Agent, Cursor, Reply
from irods_ingest_testkit.irods_server.catalog import ADMIN_USER, normalize_path
from irods_ingest_testkit.irods_server.errors import (
    CAT_INVALID_ZONE,
    CAT_NO_ROWS_FOUND,
    CAT_SQL_ERR,
    CAT_UNKNOWN_SPECIFIC_QUERY,
    SYS_NO_API_PRIV,
    IrodsError,
)
from irods_ingest_testkit.irods_server.framing import Message, element, struct_xml
from irods_ingest_testkit.irods_server.genquery import RETURN_TOTAL_ROW_COUNT, translate
from irods_ingest_testkit.irods_server.metadata import Metadata
from irods_ingest_testkit.irods_server.namespace import Namespace
from irods_ingest_testkit.irods_server.packs import (
    ArgsInp,
    AuthResponseInp,
    CollInp,
    DataObjCopyInp,
    DataObjInp,
    GenQueryInp,
    ModAccessControlInp,
    ModDataObjMeta,
    OpenedDataObjInp,
    SpecificQueryInp,
    auth_challenge_xml,
    gen_query_out_xml,
    json_buf_xml,
    lseek_out_xml,
    parse_json_buf,
    str_pi_xml,
)

Handler = Callable[[Agent, Message], Reply]

AUTHENTICATION_APN: Final = 110000
AUTH_REQUEST_AN: Final = 703
AUTH_RESPONSE_AN: Final = 704
UNAUTHENTICATED_APIS: Final = frozenset({AUTHENTICATION_APN, AUTH_REQUEST_AN, AUTH_RESPONSE_AN})

API_NAMES: Final[dict[int, str]] = {
    601: "DATA_OBJ_CREATE_AN", 602: "DATA_OBJ_OPEN_AN", 615: "DATA_OBJ_UNLINK_AN", 622: "MOD_DATA_OBJ_META_AN",
    627: "DATA_OBJ_RENAME_AN", 629: "DATA_OBJ_CHKSUM_AN", 630: "PHY_PATH_REG_AN", 632: "DATA_OBJ_TRIM_AN",
    633: "OBJ_STAT_AN", 652: "DATA_OBJ_TRUNCATE_AN", 802: "REPLICA_TRUNCATE_AN",
    10220: "GET_RESOURCE_INFO_FOR_OPERATION_AN", 673: "DATA_OBJ_CLOSE_AN", 674: "DATA_OBJ_LSEEK_AN",
    675: "DATA_OBJ_READ_AN",
    676: "DATA_OBJ_WRITE_AN", 679: "RM_COLL_AN", 681: "COLL_CREATE_AN", 695: "DATA_OBJ_REPL_AN",
    696: "DATA_OBJ_COPY_AN", 701: "GENERAL_ADMIN_AN", 702: "GEN_QUERY_AN", 703: "AUTH_REQUEST_AN",
    704: "AUTH_RESPONSE_AN", 706: "MOD_AVU_METADATA_AN", 707: "MOD_ACCESS_CONTROL_AN", 714: "USER_ADMIN_AN",
    722: "SPECIFIC_QUERY_AN", 20000: "GET_FILE_DESCRIPTOR_INFO_APN", 20002: "ATOMIC_APPLY_METADATA_OPERATIONS_APN",
    20004: "REPLICA_CLOSE_APN", 20007: "TOUCH_APN", 110000: "AUTHENTICATION_APN",
}


def _empty() -> Reply:
    return Reply()


# ---------------------------------------------------------------- authentication


def authenticate(agent: Agent, request: Message) -> Reply:
    reply, identity = agent.authenticator.json_step(parse_json_buf(request.body))
    if identity is not None:
        agent.identity = identity
    return Reply(body=json_buf_xml(reply))


def auth_request(agent: Agent, request: Message) -> Reply:
    return Reply(body=auth_challenge_xml(agent.authenticator.legacy_challenge()))


def auth_response(agent: Agent, request: Message) -> Reply:
    agent.identity = agent.authenticator.legacy_response(AuthResponseInp.parse(request.body).response)
    return _empty()


# ---------------------------------------------------------------- queries


def gen_query(agent: Agent, request: Message) -> Reply:
    inp = GenQueryInp.parse(request.body)
    if inp.continue_inx > 0:
        cursor = agent.cursors.get(inp.continue_inx)
        if inp.max_rows <= 0:
            agent.cursors.close(inp.continue_inx)
            return Reply(body=gen_query_out_xml([], [], 0, 0))
        return _page(agent, cursor, inp.max_rows, inp.continue_inx)
    if inp.max_rows <= 0:
        return Reply(body=gen_query_out_xml([], [], 0, 0))
    zone = inp.keywords.get("zone")
    if zone and zone != agent.catalog.zone:
        raise IrodsError(CAT_INVALID_ZONE, f"zone {zone} is not known")
    who = agent.who
    translated = translate(inp.selects, inp.conditions, inp.options, None if who.client.is_admin else who.client.id)
    try:
        raw = agent.catalog.q(translated.sql, translated.args)
    except sqlite3.Error as exc:
        raise IrodsError(CAT_SQL_ERR, f"{exc}") from exc
    rows = [["" if v is None else str(v) for v in r] for r in raw][max(0, inp.partial_start_index) :]
    total = len(rows) if inp.options & RETURN_TOTAL_ROW_COUNT else 0
    return _page(agent, Cursor(translated.columns, rows, total), inp.max_rows, 0)


def _page(agent: Agent, cursor: Cursor, max_rows: int, slot: int) -> Reply:
    """Return up to ``max_rows``; a full page keeps the statement open (general_query.cpp)."""
    if not cursor.rows:
        if slot:
            agent.cursors.close(slot)
        raise IrodsError(CAT_NO_ROWS_FOUND)
    page, cursor.rows = cursor.rows[:max_rows], cursor.rows[max_rows:]
    if len(page) < max_rows:
        if slot:
            agent.cursors.close(slot)
        slot = 0
    elif not slot:
        slot = agent.cursors.open(cursor)
    return Reply(body=gen_query_out_xml(cursor.columns, page, slot, cursor.total))


def specific_query(agent: Agent, request: Message) -> Reply:
    inp = SpecificQueryInp.parse(request.body)
    agent.who  # noqa: B018 - authentication is required
    if inp.continue_inx > 0:
        return _page(agent, agent.cursors.get(inp.continue_inx), inp.max_rows or 500, inp.continue_inx)
    row = agent.catalog.one("SELECT sqlStr FROM R_SPECIFIC_QUERY WHERE alias=? OR sqlStr=?", (inp.sql, inp.sql))
    if row is None:
        raise IrodsError(CAT_UNKNOWN_SPECIFIC_QUERY, f"no specific query {inp.sql!r}")
    try:
        with agent.catalog.lock:
            cur = agent.catalog.db.execute(str(row[0]), inp.args[: str(row[0]).count("?")])
            raw = cur.fetchall()
            width = len(cur.description or [])
    except sqlite3.Error as exc:
        raise IrodsError(CAT_SQL_ERR, f"{exc}") from exc
    rows = [["" if v is None else str(v) for v in r] for r in raw]
    return _page(agent, Cursor(list(range(width)), rows, 0), inp.max_rows or 500, 0)


# ---------------------------------------------------------------- collections and objects


def _namespace(agent: Agent) -> Namespace:
    return Namespace(agent.catalog, agent.context.data)


def coll_create(agent: Agent, request: Message) -> Reply:
    _namespace(agent).create_collection(agent.who, CollInp.parse(request.body))
    return _empty()


def rm_coll(agent: Agent, request: Message) -> Reply:
    _namespace(agent).remove_collection(agent.who, CollInp.parse(request.body))
    return _empty()


def rename(agent: Agent, request: Message) -> Reply:
    inp = DataObjCopyInp.parse(request.body)
    _namespace(agent).rename(agent.who, inp.src, inp.dest)
    return _empty()


def copy(agent: Agent, request: Message) -> Reply:
    inp = DataObjCopyInp.parse(request.body)
    _namespace(agent).copy(agent.who, inp.src, inp.dest)
    return _empty()


def unlink(agent: Agent, request: Message) -> Reply:
    _namespace(agent).unlink(agent.who, DataObjInp.parse(request.body))
    return _empty()


def trim(agent: Agent, request: Message) -> Reply:
    return Reply(int_info=_namespace(agent).trim(agent.who, DataObjInp.parse(request.body)))


def replicate(agent: Agent, request: Message) -> Reply:
    _namespace(agent).replicate(agent.who, DataObjInp.parse(request.body))
    return _empty()


def truncate(agent: Agent, request: Message) -> Reply:
    _namespace(agent).truncate(agent.who, DataObjInp.parse(request.body))
    return _empty()


def replica_truncate(agent: Agent, request: Message) -> Reply:
    """Success and failure both carry a JSON STR_PI (PRC parses it either way)."""
    try:
        result = _namespace(agent).replica_truncate(agent.who, DataObjInp.parse(request.body))
    except IrodsError as exc:
        exc.body = str_pi_xml(json.dumps({"message": exc.message, "error_code": exc.code}))
        raise
    return Reply(body=str_pi_xml(json.dumps(result)))


def phy_path_reg(agent: Agent, request: Message) -> Reply:
    _namespace(agent).register(agent.who, DataObjInp.parse(request.body))
    return _empty()


def chksum(agent: Agent, request: Message) -> Reply:
    return Reply(body=str_pi_xml(_namespace(agent).checksum(agent.who, DataObjInp.parse(request.body))))


def mod_data_obj_meta(agent: Agent, request: Message) -> Reply:
    inp = ModDataObjMeta.parse(request.body)
    _namespace(agent).mod_data_obj_meta(agent.who, inp.obj_path, inp.repl_num, inp.resc_hier, inp.resc_name,
                                        inp.reg_param)
    return _empty()


def touch(agent: Agent, request: Message) -> Reply:
    _namespace(agent).touch(agent.who, parse_json_buf(request.body))
    return _empty()


def obj_stat(agent: Agent, request: Message) -> Reply:
    """OBJ_STAT_AN: not used by python-irodsclient 3.x, answered for other clients."""
    path = normalize_path(DataObjInp.parse(request.body).obj_path)
    catalog = agent.catalog
    coll = catalog.collection(path)
    fields: dict[str, object]
    if coll is not None:
        obj_type = 2  # COLL_OBJ_T
        fields = {"objSize": 0, "objType": obj_type, "dataMode": 0, "dataId": coll.id, "chksum": "",
                  "ownerName": coll.owner, "ownerZone": coll.zone, "createTime": "", "modifyTime": ""}
    else:
        replicas = catalog.replicas(path)
        if not replicas:
            raise IrodsError(-310000, f"{path} does not exist")  # USER_FILE_DOES_NOT_EXIST
        r = replicas[0]
        obj_type = 1  # DATA_OBJ_T
        fields = {"objSize": r.size, "objType": obj_type, "dataMode": 0, "dataId": r.data_id, "chksum": r.checksum,
                  "ownerName": r.owner, "ownerZone": r.owner_zone, "createTime": r.create_ts,
                  "modifyTime": r.modify_ts}
    body = struct_xml("RodsObjStat_PI", *(element(k, v) for k, v in fields.items()))
    return Reply(int_info=obj_type, body=body.encode())


# ---------------------------------------------------------------- data transfer


def resource_info_for_operation(agent: Agent, request: Message) -> Reply:
    """GET_RESOURCE_INFO_FOR_OPERATION_AN (10220): where an open/create would go, for redirects."""
    inp = DataObjInp.parse(request.body)
    data = agent.context.data
    path = normalize_path(inp.obj_path)
    replicas = agent.catalog.replicas(path)
    candidates = data.matching(replicas, inp.options) if replicas else []
    good = [r for r in candidates if r.status == 1] or candidates
    if good:
        resc_id = good[0].resc_id
    elif inp.options.get("getResourceInfoOpType") == "CREATE" or not replicas:
        resc_id = data.leaf_for_new_replica(inp.options).id
    else:
        raise IrodsError(-164000, f"no replica of {path} there")  # SYS_REPLICA_DOES_NOT_EXIST
    leaf = agent.catalog.resource_by_id(resc_id)
    host = leaf.host if leaf is not None and leaf.host not in ("", "EMPTY_RESC_HOST") else agent.catalog.hostname
    return Reply(body=str_pi_xml(json.dumps({"host": host, "resource_hierarchy": agent.catalog.hierarchy(resc_id)})))


def open_object(agent: Agent, request: Message) -> Reply:
    desc = agent.context.data.open(agent.who, DataObjInp.parse(request.body))
    return Reply(int_info=agent.add_descriptor(desc))


def create_object(agent: Agent, request: Message) -> Reply:
    desc = agent.context.data.open(agent.who, DataObjInp.parse(request.body), create_api=True)
    return Reply(int_info=agent.add_descriptor(desc))


def write(agent: Agent, request: Message) -> Reply:
    inp = OpenedDataObjInp.parse(request.body)
    return Reply(int_info=agent.context.data.write(agent.descriptor(inp.l1_desc), request.bs))


def read(agent: Agent, request: Message) -> Reply:
    inp = OpenedDataObjInp.parse(request.body)
    data = agent.context.data.read(agent.descriptor(inp.l1_desc), inp.length)
    return Reply(int_info=len(data), bs=data)


def lseek(agent: Agent, request: Message) -> Reply:
    inp = OpenedDataObjInp.parse(request.body)
    return Reply(body=lseek_out_xml(agent.context.data.seek(agent.descriptor(inp.l1_desc), inp.offset, inp.whence)))


def close(agent: Agent, request: Message) -> Reply:
    inp = OpenedDataObjInp.parse(request.body)
    desc = agent.descriptor(inp.l1_desc)
    del agent.descriptors[inp.l1_desc]
    agent.context.data.close(agent.who, desc, finalize=True, close_options=inp.options)
    return _empty()


def replica_close(agent: Agent, request: Message) -> Reply:
    req = parse_json_buf(request.body)
    fd = int(req.get("fd", -1))
    desc = agent.descriptor(fd)
    del agent.descriptors[fd]
    agent.context.data.close(agent.who, desc, finalize=bool(req.get("update_status")), close_options={})
    return _empty()


def fd_info(agent: Agent, request: Message) -> Reply:
    req = parse_json_buf(request.body)
    desc = agent.descriptor(int(req.get("fd", -1)))
    return Reply(body=json_buf_xml(agent.context.data.fd_info(desc, agent.catalog.zone)))


# ---------------------------------------------------------------- metadata, ACLs, admin


def mod_avu(agent: Agent, request: Message) -> Reply:
    Metadata(agent.catalog).mod_avu(agent.who, ArgsInp.parse(request.body, "ModAVUMetadataInp_PI"))
    return _empty()


def atomic_metadata(agent: Agent, request: Message) -> Reply:
    """Errors carry a JSON body too: ``{"error_message": ..., "failed_operation": ...}``."""
    try:
        Metadata(agent.catalog).apply_atomic(agent.who, parse_json_buf(request.body))
    except IrodsError as exc:
        exc.body = json_buf_xml({"error_message": exc.message, "failed_operation": {}})
        raise
    return Reply(body=json_buf_xml({}))


def mod_access(agent: Agent, request: Message) -> Reply:
    inp = ModAccessControlInp.parse(request.body)
    Metadata(agent.catalog).set_access(agent.who, inp.recursive, inp.access_level, inp.user_name, inp.zone, inp.path)
    return _empty()


def _admin(agent: Agent) -> Admin:
    def signature() -> str:
        challenge = agent.authenticator.challenge or b""
        return challenge[:16].hex()

    def admin_password() -> str:
        who = agent.who
        return agent.catalog.password_of(who.proxy.id) or ""

    return Admin(agent.catalog, signature, admin_password)


def general_admin(agent: Agent, request: Message) -> Reply:
    _admin(agent).general(agent.who, ArgsInp.parse(request.body, "generalAdminInp_PI"))
    return _empty()


def user_admin(agent: Agent, request: Message) -> Reply:
    _admin(agent).user_admin(agent.who, ArgsInp.parse(request.body, "userAdminInp_PI"))
    return _empty()


HANDLERS: Final[dict[int, Handler]] = {
    AUTHENTICATION_APN: authenticate,
    AUTH_REQUEST_AN: auth_request,
    AUTH_RESPONSE_AN: auth_response,
    702: gen_query,
    722: specific_query,
    681: coll_create,
    679: rm_coll,
    627: rename,
    696: copy,
    615: unlink,
    632: trim,
    695: replicate,
    630: phy_path_reg,
    652: truncate,
    802: replica_truncate,
    10220: resource_info_for_operation,
    629: chksum,
    622: mod_data_obj_meta,
    20007: touch,
    633: obj_stat,
    601: create_object,
    602: open_object,
    676: write,
    675: read,
    674: lseek,
    673: close,
    20004: replica_close,
    20000: fd_info,
    706: mod_avu,
    20002: atomic_metadata,
    707: mod_access,
    701: general_admin,
    714: user_admin,
}


def require_authenticated(agent: Agent, api_number: int) -> None:
    if api_number not in UNAUTHENTICATED_APIS and agent.identity is None:
        raise IrodsError(SYS_NO_API_PRIV, "authenticate first")


__all__ = ["ADMIN_USER", "API_NAMES", "HANDLERS", "Handler", "require_authenticated"]
