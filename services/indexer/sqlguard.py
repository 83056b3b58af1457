"""`spectare sql`: read-only SQL for power users, behind guardrails.

1. `check_sql` (pure: DuckDB's own parser, no database): exactly one statement, of DuckDB's statement type
   SELECT (SELECT, WITH, FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE); and nowhere in its syntax tree a
   data-modifying node: DuckDB parses `WITH x AS (DELETE ... RETURNING *) SELECT ...` as a SELECT statement
   and runs the DELETE, so the statement type alone is not enough.
2. `run_readonly`: on its own cursor, inside `BEGIN TRANSACTION READ ONLY` (rolled back after), so a write
   that slipped past the parser fails in DuckDB itself; at most `max_rows` rows are fetched (results stream,
   so a huge result is never built); values come back JSON-safe.
3. The database is opened with external access off (`tables.open_database`): no file reads or writes, no
   extensions, no environment variables (`getenv` would show the S3 secret key).
4. The caller bounds the time (`QueryService`: the cursor is interrupted at `query_timeout_s`).
"""

import base64
import datetime as dt
import decimal
import json
import math
import threading
import time
import uuid
from typing import Any

import duckdb

from spectare.core.errors import SpectareError
from spectare.schemas.queries import SqlResponse

from .tables import first_line, one_row

READ_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
ALLOWED = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW or SUMMARIZE"

_parser: duckdb.DuckDBPyConnection | None = None
_parser_lock = threading.Lock()


class QueryRefused(SpectareError):
    """SQL that the `sql` endpoint does not run (not a single reading statement)."""


class QueryFailed(SpectareError):
    """SQL that DuckDB could not run (unknown table, type error, ...): DuckDB's message."""


def check_sql(sql: str) -> str:
    """The one reading statement in `sql`, or QueryRefused saying why not."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"cannot parse the query: {first_line(exc)}") from None
    if not statements:
        raise QueryRefused("no SQL statement given")
    if len(statements) > 1:
        raise QueryRefused(f"one statement at a time: got {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise QueryRefused(f"only reading queries run here ({ALLOWED}); refused a {statement.type.name} statement")
    writes = sorted(writes_in(statement.query))
    if writes:
        kinds = ", ".join(w.removesuffix("_QUERY_NODE").removesuffix("_NODE") for w in writes)
        raise QueryRefused(f"only reading queries run here; refused a query containing {kinds}")
    return statement.query.strip().rstrip(";")


def writes_in(query: str) -> set[str]:
    """Node types in the syntax tree of one SELECT statement that are not reads (e.g. DELETE_QUERY_NODE)."""
    global _parser
    with _parser_lock:  # an in-memory database used only to parse
        if _parser is None:
            _parser = duckdb.connect(config={"enable_external_access": False})
        raw = one_row(_parser.execute("SELECT json_serialize_sql(?)", [query]))[0]
    tree = json.loads(raw)
    if tree.get("error"):
        return {"UNSERIALIZABLE_NODE"}  # nothing reading is refused by the serializer (it takes every SELECT)
    found: set[str] = set()
    _node_types(tree, found)
    return {t for t in found if t.endswith("_NODE") and t not in READ_NODES}


def _node_types(tree: Any, found: set[str]) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "type" and isinstance(value, str):
                found.add(value)
            else:
                _node_types(value, found)
    elif isinstance(tree, list):
        for value in tree:
            _node_types(value, found)


def run_readonly(cur: duckdb.DuckDBPyConnection, sql: str, max_rows: int) -> SqlResponse:
    """Run a checked statement in a read-only transaction; at most max_rows rows."""
    query = check_sql(sql)
    began = time.perf_counter()
    cur.execute("BEGIN TRANSACTION READ ONLY")
    try:
        try:
            cur.execute(query)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            if "read-only mode" in str(exc):
                raise QueryRefused("only reading queries run here; this one tried to write") from None
            raise QueryFailed(first_line(exc)) from None
        description = cur.description or []
        rows = cur.fetchmany(max_rows + 1)
    finally:
        try:
            cur.execute("ROLLBACK")
        except duckdb.Error:
            pass  # interrupted, or the transaction already ended with the error
    truncated = len(rows) > max_rows
    return SqlResponse(
        columns=tuple(d[0] for d in description), types=tuple(str(d[1]) for d in description),
        rows=tuple(tuple(json_safe(v) for v in row) for row in rows[:max_rows]), truncated=truncated,
        elapsed_s=round(time.perf_counter() - began, 6),
    )


def json_safe(value: Any) -> Any:
    """A DuckDB value as something both msgpack and JSON carry: times as ISO text, decimals as floats, ..."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    return str(value)
