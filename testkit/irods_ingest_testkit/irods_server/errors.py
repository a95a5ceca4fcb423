"""iRODS error codes the test server returns, and the one exception type that carries them.

Every number is the one in iRODS's ``rodsErrorTable.h`` and was checked against
python-irodsclient 3.3.0's ``irods/exception.py`` so that the client raises the same
exception class as against a real server.
"""

from __future__ import annotations

from typing import Final

SYS_SOCK_READ_ERR: Final = -4000  # SYS_HEADER_READ_LEN_ERR in PRC's table
SYS_UNMATCHED_API_NUM: Final = -12000
SYS_NO_API_PRIV: Final = -13000
SYS_API_INPUT_ERR: Final = -14000
SYS_OUT_OF_FILE_DESC: Final = -18000
SYS_INVALID_ZONE_NAME: Final = -26000
SYS_INVALID_FILE_PATH: Final = -31000
SYS_INVALID_RESC_INPUT: Final = -32000
SYS_NO_PATH_PERMISSION: Final = -36000
SYS_INVALID_OPR_TYPE: Final = -35000
SYS_PROXYUSER_NO_PRIV: Final = -39000
SYS_COPY_ALREADY_IN_RESC: Final = -46000
SYS_NOT_SUPPORTED: Final = -66000
SYS_RESC_DOES_NOT_EXIST: Final = -78000
SYS_CANT_DIRECTLY_ACC_COMPOUND_RESC: Final = -95000
SYS_INVALID_INPUT_PARAM: Final = -130000
SYS_BAD_INPUT: Final = -158000
SYS_REPLICA_DOES_NOT_EXIST: Final = -164000
SYS_REPLICA_INACCESSIBLE: Final = -168000
SYS_NOT_ALLOWED: Final = -169000
USER_FILE_DOES_NOT_EXIST: Final = -310000
USER_FILE_TOO_LARGE: Final = -311000
OVERWRITE_WITHOUT_FORCE_FLAG: Final = -312000
USER_CHKSUM_MISMATCH: Final = -314000
USER_BAD_KEYWORD_ERR: Final = -315000
USER__NULL_INPUT_ERR: Final = -316000
USER_INPUT_PATH_ERR: Final = -317000
USER_INPUT_OPTION_ERR: Final = -318000
USER_INVALID_USERNAME_FORMAT: Final = -319000
USER_NO_RESC_INPUT_ERR: Final = -321000
SAME_SRC_DEST_PATHS_ERR: Final = -339000
BAD_INPUT_DESC_INDEX: Final = -345000
OBJ_PATH_DOES_NOT_EXIST: Final = -358000
USER_INCOMPATIBLE_PARAMS: Final = -402000
LOCKED_DATA_OBJECT_ACCESS: Final = -406000
UNIX_FILE_OPEN_ERR: Final = -510000
UNIX_FILE_STAT_ERR: Final = -516000
UNIX_FILE_TRUNCATE_ERR: Final = -529000
CAT_SQL_ERR: Final = -806000
CAT_GET_ROW_ERR: Final = -807000
CAT_NO_ROWS_FOUND: Final = -808000
CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME: Final = -809000
CAT_INVALID_RESOURCE_TYPE: Final = -810000
CAT_UNKNOWN_COLLECTION: Final = -814000
CAT_INVALID_ARGUMENT: Final = -816000
CAT_UNKNOWN_FILE: Final = -817000
CAT_NO_ACCESS_PERMISSION: Final = -818000
CAT_SUCCESS_BUT_WITH_NO_INFO: Final = -819000
CAT_COLLECTION_NOT_EMPTY: Final = -821000
CAT_INVALID_AUTHENTICATION: Final = -826000
CAT_INVALID_USER: Final = -827000
CAT_INVALID_ZONE: Final = -828000
CAT_INVALID_GROUP: Final = -829000
CAT_INSUFFICIENT_PRIVILEGE_LEVEL: Final = -830000
CAT_INVALID_RESOURCE: Final = -831000
CAT_NAME_EXISTS_AS_COLLECTION: Final = -833000
CAT_NAME_EXISTS_AS_DATAOBJ: Final = -834000
CAT_RESOURCE_NOT_EMPTY: Final = -835000
CAT_UNKNOWN_SPECIFIC_QUERY: Final = -853000
CAT_STATEMENT_TABLE_FULL: Final = -860000
CAT_NO_CHECKSUM_FOR_REPLICA: Final = -862000
INVALID_OBJECT_TYPE: Final = -1105000
HIERARCHY_ERROR: Final = -1803000
DIRECT_CHILD_ACCESS: Final = -1816000

# Not errors: status values the protocol uses (rodsErrorTable.h / rodsDef.h).
SYS_SVR_TO_CLI_COLL_STAT: Final = 99999996


class IrodsError(Exception):
    """An iRODS API failure: ``code`` goes into the reply's ``intInfo``, ``message`` into RError_PI."""

    def __init__(self, code: int, message: str = "", body: bytes = b"") -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.body = body  # some APIs answer an error with a structure too (e.g. JSON)

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()


class ProtocolError(Exception):
    """The peer sent bytes that are not an iRODS message; the connection is closed."""
