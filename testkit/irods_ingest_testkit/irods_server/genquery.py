"""GenQuery1 translated to SQL the way the real server does it.

The real server (``server/icat/src/general_query.cpp`` with the tables of
``general_query_setup.cpp``) maps each column number to a ``table.column``, collects
the tables the select list and the conditions need, and joins them along a fixed graph
of foreign-key links. This module does the same against the SQLite catalog, with the
real table names and the aliases the server uses for the second copies of a table
(``r_data_metamap``, ``r_coll_access``, ``r_group_main``...).

Semantics copied from the server:

* a condition ``op 'value'`` takes everything between the first and the last quote, so a
  quote inside a name needs no escaping (``insertWhere``: "If embedded 's, skip them");
  ``||`` and ``&&`` combine conditions on one column; ``in``, ``between``, ``like`` and
  ``not like`` work as in PostgreSQL (``LIKE`` is case-sensitive and escapes with ``\\``);
* rows are DISTINCT unless NO_DISTINCT (0x40); UPPER_CASE_WHERE (0x200) upper-cases the
  column side; aggregates are ivalue 2..6 (min, max, sum, avg, count) and group by the rest;
* ordering: the columns flagged ORDER_BY (0x400) / ORDER_BY_DESC (0x800), then COLL_NAME,
  DATA_NAME and DATA_REPL_NUM when they are selected (then the remaining selected columns,
  so that paging is deterministic);
* D_RESC_HIER (422) is stored as a resource id and shown as ``root;...;leaf`` (``rsGenQuery``);
* a non-admin sees only data objects and collections it may at least read_metadata
  (the STRICT ACL policy, ``acAclPolicy``), resolved through its groups.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Final

from irods_ingest_testkit.irods_server.catalog import READ_METADATA
from irods_ingest_testkit.irods_server.errors import CAT_SQL_ERR, SYS_API_INPUT_ERR, IrodsError

ORDER_BY: Final = 0x400
ORDER_BY_DESC: Final = 0x800
RETURN_TOTAL_ROW_COUNT: Final = 0x20
NO_DISTINCT: Final = 0x40
UPPER_CASE_WHERE: Final = 0x200
AGGREGATES: Final = {2: "min", 3: "max", 4: "sum", 5: "avg", 6: "count"}

D_RESC_HIER: Final = 422
COLL_NAME: Final = 501
DATA_NAME: Final = 403
DATA_REPL_NUM: Final = 404

# column number -> (table alias, SQL column). Numbers: lib/core/include/irods/rodsGenQuery.h.
COLUMNS: Final[dict[int, tuple[str, str]]] = {
    101: ("R_ZONE_MAIN", "zone_id"),
    102: ("R_ZONE_MAIN", "zone_name"),
    103: ("R_ZONE_MAIN", "zone_type_name"),
    104: ("R_ZONE_MAIN", "zone_conn_string"),
    105: ("R_ZONE_MAIN", "r_comment"),
    106: ("R_ZONE_MAIN", "create_ts"),
    107: ("R_ZONE_MAIN", "modify_ts"),
    201: ("R_USER_MAIN", "user_id"),
    202: ("R_USER_MAIN", "user_name"),
    203: ("R_USER_MAIN", "user_type_name"),
    204: ("R_USER_MAIN", "zone_name"),
    206: ("R_USER_MAIN", "user_info"),
    207: ("R_USER_MAIN", "r_comment"),
    208: ("R_USER_MAIN", "create_ts"),
    209: ("R_USER_MAIN", "modify_ts"),
    301: ("R_RESC_MAIN", "resc_id"),
    302: ("R_RESC_MAIN", "resc_name"),
    303: ("R_RESC_MAIN", "zone_name"),
    304: ("R_RESC_MAIN", "resc_type_name"),
    305: ("R_RESC_MAIN", "resc_class_name"),
    306: ("R_RESC_MAIN", "resc_net"),
    307: ("R_RESC_MAIN", "resc_def_path"),
    308: ("R_RESC_MAIN", "free_space"),
    309: ("R_RESC_MAIN", "resc_info"),
    310: ("R_RESC_MAIN", "r_comment"),
    311: ("R_RESC_MAIN", "create_ts"),
    312: ("R_RESC_MAIN", "modify_ts"),
    313: ("R_RESC_MAIN", "resc_status"),
    314: ("R_RESC_MAIN", "free_space_ts"),
    315: ("R_RESC_MAIN", "resc_children"),
    316: ("R_RESC_MAIN", "resc_context"),
    317: ("R_RESC_MAIN", "resc_parent"),
    318: ("R_RESC_MAIN", "resc_parent_context"),
    401: ("R_DATA_MAIN", "data_id"),
    402: ("R_DATA_MAIN", "coll_id"),
    403: ("R_DATA_MAIN", "data_name"),
    404: ("R_DATA_MAIN", "data_repl_num"),
    405: ("R_DATA_MAIN", "data_version"),
    406: ("R_DATA_MAIN", "data_type_name"),
    407: ("R_DATA_MAIN", "data_size"),
    409: ("R_RESC_MAIN", "resc_name"),  # D_RESC_NAME: the leaf, via resc_id
    410: ("R_DATA_MAIN", "data_path"),
    411: ("R_DATA_MAIN", "data_owner_name"),
    412: ("R_DATA_MAIN", "data_owner_zone"),
    413: ("R_DATA_MAIN", "data_is_dirty"),
    414: ("R_DATA_MAIN", "data_status"),
    415: ("R_DATA_MAIN", "data_checksum"),
    416: ("R_DATA_MAIN", "data_expiry_ts"),
    417: ("R_DATA_MAIN", "data_map_id"),
    418: ("R_DATA_MAIN", "r_comment"),
    419: ("R_DATA_MAIN", "create_ts"),
    420: ("R_DATA_MAIN", "modify_ts"),
    421: ("R_DATA_MAIN", "data_mode"),
    422: ("R_DATA_MAIN", "resc_hier(R_DATA_MAIN.resc_id)"),
    423: ("R_DATA_MAIN", "resc_id"),
    424: ("R_DATA_MAIN", "access_ts"),
    500: ("R_COLL_MAIN", "coll_id"),
    501: ("R_COLL_MAIN", "coll_name"),
    502: ("R_COLL_MAIN", "parent_coll_name"),
    503: ("R_COLL_MAIN", "coll_owner_name"),
    504: ("R_COLL_MAIN", "coll_owner_zone"),
    505: ("R_COLL_MAIN", "coll_map_id"),
    506: ("R_COLL_MAIN", "coll_inheritance"),
    507: ("R_COLL_MAIN", "r_comment"),
    508: ("R_COLL_MAIN", "create_ts"),
    509: ("R_COLL_MAIN", "modify_ts"),
    510: ("R_COLL_MAIN", "coll_type"),
    511: ("R_COLL_MAIN", "coll_info1"),
    512: ("R_COLL_MAIN", "coll_info2"),
    700: ("r_data_access", "access_type_id"),
    701: ("r_data_tokn_accs", "token_name"),
    702: ("r_data_tokn_accs", "token_namespace"),
    703: ("r_data_access", "user_id"),
    704: ("r_data_access", "object_id"),
    710: ("r_coll_access", "access_type_id"),
    711: ("r_coll_tokn_accs", "token_name"),
    712: ("r_coll_tokn_accs", "token_namespace"),
    713: ("r_coll_access", "user_id"),
    714: ("r_coll_access", "object_id"),
    900: ("R_USER_GROUP", "group_user_id"),
    901: ("r_group_main", "user_name"),
    1000: ("R_RULE_EXEC", "rule_exec_id"),
    1001: ("R_RULE_EXEC", "rule_name"),
    1002: ("R_RULE_EXEC", "rei_file_path"),
    1003: ("R_RULE_EXEC", "user_name"),
    1004: ("R_RULE_EXEC", "exe_address"),
    1005: ("R_RULE_EXEC", "exe_time"),
    1006: ("R_RULE_EXEC", "exe_frequency"),
    1007: ("R_RULE_EXEC", "priority"),
    1009: ("R_RULE_EXEC", "notification_addr"),
    1010: ("R_RULE_EXEC", "last_exe_time"),
    1011: ("R_RULE_EXEC", "exe_status"),
    1012: ("R_RULE_EXEC", "exe_context"),
    1300: ("r_coll_user_main", "user_name"),
    1301: ("r_coll_user_main", "zone_name"),
    1600: ("R_USER_AUTH", "user_id"),
    1601: ("R_USER_AUTH", "user_auth_name"),
    2000: ("R_QUOTA_MAIN", "user_id"),
    2001: ("R_QUOTA_MAIN", "resc_id"),
    2002: ("R_QUOTA_MAIN", "quota_limit"),
    2003: ("R_QUOTA_MAIN", "quota_over"),
    2004: ("R_QUOTA_MAIN", "modify_ts"),
    2200: ("R_TICKET_MAIN", "ticket_id"),
    2201: ("R_TICKET_MAIN", "ticket_string"),
    2202: ("R_TICKET_MAIN", "ticket_type"),
    2203: ("R_TICKET_MAIN", "user_id"),
    2204: ("R_TICKET_MAIN", "object_id"),
    2205: ("R_TICKET_MAIN", "object_type"),
    2206: ("R_TICKET_MAIN", "uses_limit"),
    2207: ("R_TICKET_MAIN", "uses_count"),
    2208: ("R_TICKET_MAIN", "ticket_expiry_ts"),
    2209: ("R_TICKET_MAIN", "create_ts"),
    2210: ("R_TICKET_MAIN", "modify_ts"),
    2211: ("R_TICKET_MAIN", "write_file_count"),
    2212: ("R_TICKET_MAIN", "write_file_limit"),
    2213: ("R_TICKET_MAIN", "write_byte_count"),
    2214: ("R_TICKET_MAIN", "write_byte_limit"),
    2220: ("R_TICKET_ALLOWED_HOSTS", "ticket_id"),
    2221: ("R_TICKET_ALLOWED_HOSTS", "host"),
    2222: ("R_TICKET_ALLOWED_USERS", "ticket_id"),
    2223: ("R_TICKET_ALLOWED_USERS", "user_name"),
    2224: ("R_TICKET_ALLOWED_GROUPS", "ticket_id"),
    2225: ("R_TICKET_ALLOWED_GROUPS", "group_name"),
    2226: ("r_ticket_data_main", "data_name"),
    2227: ("r_ticket_coll_main", "coll_name"),
    2228: ("r_ticket_coll_main", "coll_name"),
    2229: ("r_ticket_user_main", "user_name"),
    2230: ("r_ticket_user_main", "zone_name"),
}
for _base, _kind in ((600, "data"), (610, "coll"), (630, "resc"), (640, "user")):
    _alias = f"r_{_kind}_meta_main"
    COLUMNS.update({
        _base: (_alias, "meta_attr_name"),
        _base + 1: (_alias, "meta_attr_value"),
        _base + 2: (_alias, "meta_attr_unit"),
        _base + 3: (_alias, "meta_id"),
        _base + 4: (_alias, "create_ts"),
        _base + 5: (_alias, "modify_ts"),
    })

# alias -> FROM-clause text (the second copies of a table get the server's alias names)
TABLES: Final[dict[str, str]] = {
    name: name
    for name in (
        "R_ZONE_MAIN", "R_USER_MAIN", "R_RESC_MAIN", "R_DATA_MAIN", "R_COLL_MAIN", "R_USER_GROUP",
        "R_USER_AUTH", "R_RULE_EXEC", "R_QUOTA_MAIN", "R_TICKET_MAIN", "R_TICKET_ALLOWED_HOSTS",
        "R_TICKET_ALLOWED_USERS", "R_TICKET_ALLOWED_GROUPS",
    )
}
TABLES.update({
    "r_group_main": "R_USER_MAIN r_group_main",
    "r_data_access": "R_OBJT_ACCESS r_data_access",
    "r_data_tokn_accs": "R_TOKN_MAIN r_data_tokn_accs",
    "r_coll_access": "R_OBJT_ACCESS r_coll_access",
    "r_coll_tokn_accs": "R_TOKN_MAIN r_coll_tokn_accs",
    "r_coll_user_main": "R_USER_MAIN r_coll_user_main",
    "r_ticket_data_main": "R_DATA_MAIN r_ticket_data_main",
    "r_ticket_coll_main": "R_COLL_MAIN r_ticket_coll_main",
    "r_ticket_user_main": "R_USER_MAIN r_ticket_user_main",
})
for _kind in ("data", "coll", "resc", "user"):
    TABLES[f"r_{_kind}_metamap"] = f"R_OBJT_METAMAP r_{_kind}_metamap"
    TABLES[f"r_{_kind}_meta_main"] = f"R_META_MAIN r_{_kind}_meta_main"

# The foreign-key graph (a tree, as in general_query_setup.cpp, so join paths are unique).
LINKS: Final[list[tuple[str, str, str]]] = [
    ("R_COLL_MAIN", "R_DATA_MAIN", "R_COLL_MAIN.coll_id = R_DATA_MAIN.coll_id"),
    ("R_RESC_MAIN", "R_DATA_MAIN", "R_RESC_MAIN.resc_id = R_DATA_MAIN.resc_id"),
    ("R_DATA_MAIN", "r_data_metamap", "R_DATA_MAIN.data_id = r_data_metamap.object_id"),
    ("r_data_metamap", "r_data_meta_main", "r_data_metamap.meta_id = r_data_meta_main.meta_id"),
    ("R_COLL_MAIN", "r_coll_metamap", "R_COLL_MAIN.coll_id = r_coll_metamap.object_id"),
    ("r_coll_metamap", "r_coll_meta_main", "r_coll_metamap.meta_id = r_coll_meta_main.meta_id"),
    ("R_RESC_MAIN", "r_resc_metamap", "R_RESC_MAIN.resc_id = r_resc_metamap.object_id"),
    ("r_resc_metamap", "r_resc_meta_main", "r_resc_metamap.meta_id = r_resc_meta_main.meta_id"),
    ("R_USER_MAIN", "r_user_metamap", "R_USER_MAIN.user_id = r_user_metamap.object_id"),
    ("r_user_metamap", "r_user_meta_main", "r_user_metamap.meta_id = r_user_meta_main.meta_id"),
    ("R_DATA_MAIN", "r_data_access", "R_DATA_MAIN.data_id = r_data_access.object_id"),
    ("r_data_access", "r_data_tokn_accs",
     "r_data_access.access_type_id = r_data_tokn_accs.token_id AND r_data_tokn_accs.token_namespace = 'access_type'"),
    ("r_data_access", "R_USER_MAIN", "r_data_access.user_id = R_USER_MAIN.user_id"),
    ("R_COLL_MAIN", "r_coll_access", "R_COLL_MAIN.coll_id = r_coll_access.object_id"),
    ("r_coll_access", "r_coll_tokn_accs",
     "r_coll_access.access_type_id = r_coll_tokn_accs.token_id AND r_coll_tokn_accs.token_namespace = 'access_type'"),
    ("r_coll_access", "r_coll_user_main", "r_coll_access.user_id = r_coll_user_main.user_id"),
    ("R_USER_MAIN", "R_USER_GROUP", "R_USER_MAIN.user_id = R_USER_GROUP.user_id"),
    ("R_USER_GROUP", "r_group_main", "R_USER_GROUP.group_user_id = r_group_main.user_id"),
    ("R_USER_MAIN", "R_USER_AUTH", "R_USER_MAIN.user_id = R_USER_AUTH.user_id"),
    ("R_USER_MAIN", "R_QUOTA_MAIN", "R_USER_MAIN.user_id = R_QUOTA_MAIN.user_id"),
    ("R_TICKET_MAIN", "r_ticket_user_main", "R_TICKET_MAIN.user_id = r_ticket_user_main.user_id"),
    ("R_TICKET_MAIN", "r_ticket_data_main", "R_TICKET_MAIN.object_id = r_ticket_data_main.data_id"),
    ("R_TICKET_MAIN", "r_ticket_coll_main", "R_TICKET_MAIN.object_id = r_ticket_coll_main.coll_id"),
    ("R_TICKET_MAIN", "R_TICKET_ALLOWED_HOSTS", "R_TICKET_MAIN.ticket_id = R_TICKET_ALLOWED_HOSTS.ticket_id"),
    ("R_TICKET_MAIN", "R_TICKET_ALLOWED_USERS", "R_TICKET_MAIN.ticket_id = R_TICKET_ALLOWED_USERS.ticket_id"),
    ("R_TICKET_MAIN", "R_TICKET_ALLOWED_GROUPS", "R_TICKET_MAIN.ticket_id = R_TICKET_ALLOWED_GROUPS.ticket_id"),
]

_META_KINDS: Final = {600: "data", 610: "coll", 630: "resc", 640: "user"}
_META_OWNERS: Final = {"data": ("R_DATA_MAIN", "data_id"), "coll": ("R_COLL_MAIN", "coll_id"),
                       "resc": ("R_RESC_MAIN", "resc_id"), "user": ("R_USER_MAIN", "user_id")}

_ADJACENCY: dict[str, list[tuple[str, str]]] = {}
for _a, _b, _cond in LINKS:
    _ADJACENCY.setdefault(_a, []).append((_b, _cond))
    _ADJACENCY.setdefault(_b, []).append((_a, _cond))


def column_sql(col: int) -> str:
    if col not in COLUMNS:
        raise IrodsError(CAT_SQL_ERR, f"unknown GenQuery column {col}")
    table, column = COLUMNS[col]
    return column if "(" in column else f"{table}.{column}"


def join_tables(needed: list[str]) -> tuple[list[str], list[str]]:
    """The tables to select from and the join conditions that connect ``needed``."""
    needed = list(dict.fromkeys(needed))
    start = needed[0]
    tables: list[str] = [start]
    conditions: list[str] = []
    for target in needed[1:]:
        if target in tables:
            continue
        previous: dict[str, tuple[str, str] | None] = {start: None}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if current == target:
                break
            for nxt, cond in _ADJACENCY.get(current, []):
                if nxt not in previous:
                    previous[nxt] = (current, cond)
                    queue.append(nxt)
        if target not in previous:
            raise IrodsError(CAT_SQL_ERR, f"no join path from {start} to {target}")
        node = target
        step = previous[node]
        while step is not None:
            if node not in tables:
                tables.append(node)
                conditions.append(step[1])
            node = step[0]
            step = previous[node]
    return tables, conditions


# ---------------------------------------------------------------- conditions

_OPERATORS: Final = ("not like", "like", "not in", "in", "not between", "between", "<>", "!=", "<=", ">=", "=", "<", ">",
                     "begin_of", "parent_of")
_SIMPLE: Final = re.compile(r"\s*(not\s+like|like|<>|!=|<=|>=|=|<|>)\s*'(.*)'\s*$", re.S | re.I)
_COMPOUND: Final = re.compile(
    r"'\s*(\|\||&&)\s*(not\s+like|like|not\s+in|in|not\s+between|between|<>|!=|<=|>=|=|<|>)", re.I
)
_TOKEN: Final = re.compile(
    r"\s*(?:(\|\||&&)|'((?:[^']|'')*)'|(not\s+like|like|not\s+in|in|not\s+between|between|begin_of|parent_of|"
    r"<>|!=|<=|>=|=|<|>)|(\()|(\))|(,))",
    re.I,
)


@dataclass
class _Tok:
    kind: str  # logic | lit | op | ( | ) | ,
    value: str


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if not text[pos:].strip():
                break
            raise IrodsError(CAT_SQL_ERR, f"cannot parse GenQuery condition {text!r}")
        pos = m.end()
        if m.group(1):
            toks.append(_Tok("logic", m.group(1)))
        elif m.group(2) is not None:
            toks.append(_Tok("lit", m.group(2).replace("''", "'")))
        elif m.group(3):
            toks.append(_Tok("op", re.sub(r"\s+", " ", m.group(3).lower())))
        elif m.group(4):
            toks.append(_Tok("(", "("))
        elif m.group(5):
            toks.append(_Tok(")", ")"))
        else:
            toks.append(_Tok(",", ","))
    return toks


def _sql_op(op: str) -> str:
    return {"!=": "<>", "not like": "NOT LIKE", "like": "LIKE"}.get(op, op)


def condition_sql(col_sql: str, text: str, upper: bool) -> tuple[str, list[str]]:
    """One GenQuery condition string (``= 'x'``, ``like 'a%' || = 'b'``...) as SQL and arguments."""
    lhs = f"upper({col_sql})" if upper else col_sql
    simple = _SIMPLE.match(text)
    if simple and not _COMPOUND.search(text):
        # First quote to last quote, embedded quotes and all (general_query.cpp insertWhere).
        op = _sql_op(re.sub(r"\s+", " ", simple.group(1).lower()))
        escape = " ESCAPE '\\'" if "LIKE" in op else ""
        return f"({lhs} {op} ?{escape})", [simple.group(2)]
    toks = _tokenize(text)
    out: list[str] = []
    args: list[str] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        i += 1
        if tok.kind == "logic":
            out.append(" OR " if tok.value == "||" else " AND ")
            continue
        if tok.kind != "op":
            raise IrodsError(CAT_SQL_ERR, f"expected an operator in {text!r}")
        op = tok.value
        if op in ("in", "not in"):
            values: list[str] = []
            while i < len(toks) and toks[i].kind in ("(", ",", "lit"):
                if toks[i].kind == "lit":
                    values.append(toks[i].value)
                i += 1
            if i < len(toks) and toks[i].kind == ")":
                i += 1
            out.append(f"{lhs} {op.upper()} ({','.join('?' * len(values))})")
            args += values
        elif op in ("between", "not between"):
            lits = [t.value for t in toks[i : i + 2] if t.kind == "lit"]
            if len(lits) != 2:
                raise IrodsError(CAT_SQL_ERR, f"between needs two values: {text!r}")
            i += 2
            out.append(f"{lhs} {op.upper()} ? AND ?")
            args += lits
        elif op in ("begin_of", "parent_of"):
            value = toks[i].value
            i += 1
            if op == "begin_of":  # the column starts with the value
                out.append(f"({lhs} = ? OR substr({lhs}, 1, length(?) + 1) = ? || '/')")
            else:  # the column is the value or one of its ancestors
                out.append(f"(? = {lhs} OR substr(?, 1, length({lhs}) + 1) = {lhs} || '/')")
            args += [value, value, value] if op == "begin_of" else [value, value]
        else:
            if i >= len(toks) or toks[i].kind != "lit":
                raise IrodsError(CAT_SQL_ERR, f"operator without a value in {text!r}")
            value = toks[i].value
            i += 1
            sql_op = _sql_op(op)
            escape = " ESCAPE '\\'" if "LIKE" in sql_op else ""
            out.append(f"{lhs} {sql_op} ?{escape}")
            args.append(value)
    return "(" + "".join(out) + ")", args


# ---------------------------------------------------------------- whole queries


@dataclass
class Translated:
    sql: str
    args: list[object]
    columns: list[int]


def translate(
    selects: list[tuple[int, int]],
    conditions: list[tuple[int, str]],
    options: int,
    restrict_to_user_id: int | None,
) -> Translated:
    """Build the SQL for a GenQuery; ``restrict_to_user_id`` applies the STRICT ACL filter."""
    if not selects:
        raise IrodsError(SYS_API_INPUT_ERR, "GenQuery without select columns")
    needed: list[str] = []
    select_sql: list[str] = []
    order: list[str] = []
    group: list[str] = []
    any_aggregate = False
    for col, flag in selects:
        expr = column_sql(col)
        needed.append(COLUMNS[col][0])
        aggregate = AGGREGATES.get(flag & 0xFF) if flag & 0xFF not in (0, 1) else None
        if aggregate:
            any_aggregate = True
            select_sql.append(f"{aggregate}({expr})")
        else:
            select_sql.append(expr)
            group.append(expr)
        if flag & ORDER_BY:
            order.append(expr)
        elif flag & ORDER_BY_DESC:
            order.append(expr + " DESC")
    conds = _conditions(conditions, bool(options & UPPER_CASE_WHERE), needed)
    where, args, extra_from, extra_joins = conds.where, conds.args, conds.extra_from, conds.extra_joins
    tables, joins = join_tables(needed)
    joins += extra_joins
    if restrict_to_user_id is not None:
        acl, acl_args = _strict_acl(tables, restrict_to_user_id)
        where += acl
        args += acl_args
    selected = {c for c, _ in selects}
    if not any_aggregate:
        for col in (COLL_NAME, DATA_NAME, DATA_REPL_NUM):
            if col in selected:
                order.append(column_sql(col))
        order += [e for e in select_sql if e not in order]
    distinct = "" if options & NO_DISTINCT else "DISTINCT "
    sql = f"SELECT {distinct}{', '.join(select_sql)} FROM {', '.join([TABLES[t] for t in tables] + extra_from)}"
    if joins or where:
        sql += " WHERE " + " AND ".join(joins + where)
    if any_aggregate and group:
        sql += " GROUP BY " + ", ".join(group)
    if order:
        sql += " ORDER BY " + ", ".join(dict.fromkeys(order))
    return Translated(sql, args, [c for c, _ in selects])


@dataclass
class _Conditions:
    where: list[str]
    args: list[object]
    extra_from: list[str]
    extra_joins: list[str]


def _conditions(conditions: list[tuple[int, str]], upper: bool, needed: list[str]) -> _Conditions:
    """The WHERE clauses; adds the tables they need to ``needed``.

    Each repeated attribute-name condition on AVUs starts another AVU join (the server's
    aliases for multiple AVU conditions); value/unit conditions bind to the latest one.
    """
    out = _Conditions([], [], [], [])
    names_seen: dict[str, int] = {}
    for col, text in conditions:
        expr = column_sql(col)
        kind = _META_KINDS.get(col - col % 10) if col % 10 <= 5 else None
        avu_join = 1
        if kind is not None:
            if col % 10 == 0:
                names_seen[kind] = names_seen.get(kind, 0) + 1
            avu_join = names_seen.get(kind, 1)
        if kind is not None and avu_join > 1:
            owner_table, owner_id = _META_OWNERS[kind]
            meta, link = f"r_{kind}_meta_main{avu_join}", f"r_{kind}_metamap{avu_join}"
            if f"R_META_MAIN {meta}" not in out.extra_from:
                out.extra_from += [f"R_OBJT_METAMAP {link}", f"R_META_MAIN {meta}"]
                out.extra_joins += [f"{owner_table}.{owner_id} = {link}.object_id", f"{link}.meta_id = {meta}.meta_id"]
                needed.append(owner_table)
            expr = f"{meta}.{COLUMNS[col][1]}"
        else:
            needed.append(COLUMNS[col][0])
        sql, values = condition_sql(expr, text, upper)
        out.where.append(sql)
        out.args += values
    return out


def _strict_acl(tables: list[str], user_id: int) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    visible = (
        "SELECT a.object_id FROM R_OBJT_ACCESS a JOIN R_USER_GROUP g ON g.group_user_id = a.user_id "
        "WHERE g.user_id = ? AND a.access_type_id >= ?"
    )
    if "R_DATA_MAIN" in tables:
        clauses.append(f"R_DATA_MAIN.data_id IN ({visible})")
        args += [user_id, READ_METADATA]
    if "R_COLL_MAIN" in tables:
        clauses.append(f"R_COLL_MAIN.coll_id IN ({visible})")
        args += [user_id, READ_METADATA]
    return clauses, args
