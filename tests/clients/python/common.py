"""Shared parts of the Python client programs of the client suite.

Each program connects to rds-iam-proxy (PGHOST/PGPORT/PGUSER/PGDATABASE, no password), runs
every feature of the matrix and prints one JSON line per feature on stdout:
{"client": ..., "feature": ..., "ok": true|false, "gap": true?, "detail": ...}.
tests/tests/clients.rs runs the programs and builds tests/clients/README.md from those lines.
"""

import asyncio
import hashlib
import json
import os
import sys
import time
import traceback

HOST = os.environ.get("PGHOST", "127.0.0.1")
PORT = int(os.environ.get("PGPORT", "5432"))
USER = os.environ.get("PGUSER", "iam_user")
DATABASE = os.environ.get("PGDATABASE", "appdb")
TLS_PORT = os.environ.get("CLIENTS_TLS_PORT")

# 50,000 rows of 1,000 characters: a 50 MB result.
LARGE_ROWS = int(os.environ.get("CLIENTS_LARGE_ROWS", "50000"))
LARGE_WIDTH = 1000
LARGE_SQL = (
    f"select i, lpad(i::text, {LARGE_WIDTH}, 'x') as t "
    f"from generate_series(1, {LARGE_ROWS}) i order by i"
)
COPY_ROWS = 10_000
COPY_OUT_QUERY = f"select i, md5(i::text) from generate_series(1, {COPY_ROWS}) i order by i"
COPY_OUT_SQL = f"copy ({COPY_OUT_QUERY}) to stdout"
COPY_IN_TABLE = "create temp table copy_in (i int primary key, t text not null)"
COPY_IN_SQL = "copy copy_in (i, t) from stdin"
COPY_IN_CHECK = "select count(*), coalesce(bool_and(t = md5(i::text)), false) from copy_in"
APP_NAME_SQL = "select application_name from pg_stat_activity where pid = pg_backend_pid()"
UPSTREAM_SQL = "select current_user::text, ssl from pg_stat_ssl where pid = pg_backend_pid()"
WAIT = 20.0  # seconds: bound of every wait (notification, cancel, running query)


def copy_text() -> bytes:
    """COPY text both directions use: `i<TAB>md5(i)` lines, as the server renders them."""
    return "".join(
        f"{i}\t{hashlib.md5(str(i).encode()).hexdigest()}\n" for i in range(1, COPY_ROWS + 1)
    ).encode()


def check_large_rows(rows) -> str:
    """Every row of LARGE_SQL, in order and intact; returns a detail string."""
    n = 0
    total = 0
    for i, t in rows:
        n += 1
        if i != n or len(t) != LARGE_WIDTH or not t.endswith(str(n)):
            raise AssertionError(f"row {n} is wrong: {i!r}, {t[:20]!r}...{t[-20:]!r}")
        total += len(t)
    if n != LARGE_ROWS:
        raise AssertionError(f"{n} rows, expected {LARGE_ROWS}")
    return f"{n} rows, {total / 1e6:.1f} MB"


def check_copy_out(data: bytes) -> str:
    expected = copy_text()
    if data != expected:
        raise AssertionError(f"{len(data)} bytes differ from the expected {len(expected)}")
    return f"{COPY_ROWS} rows, {len(data)} bytes, byte-exact"


def check_copy_in(row) -> str:
    count, same = row
    if count != COPY_ROWS or not same:
        raise AssertionError(f"server has {count} rows, all equal: {same}")
    return f"{COPY_ROWS} rows, server-side check equal"


def running_query_sql(tag: str) -> str:
    """Counts other sessions running the query tagged `tag` (for the cancel test)."""
    return (
        "select count(*) from pg_stat_activity where state = 'active' "
        f"and pid <> pg_backend_pid() and query like '%{tag}%' and query not like '%pg_stat_activity%'"
    )


def prepared_count_sql(tag: str) -> str:
    """Counts this session's prepared statements whose text holds `tag` (split so that this
    query, which drivers may prepare too, does not hold it)."""
    half = len(tag) // 2
    return (
        "select count(*) from pg_prepared_statements "
        f"where strpos(statement, '{tag[:half]}' || '{tag[half:]}') > 0"
    )


def sleep_sql(tag: str) -> str:
    return f"select pg_sleep(30) /* {tag} */"


class Gap(Exception):
    """The client has no such feature: reported as a named gap with this reason."""


class Report:
    def __init__(self, client: str):
        self.client = client
        self.failed = False

    def emit(self, feature: str, ok: bool, detail: str, gap: bool = False):
        line = {"client": self.client, "feature": feature, "ok": ok, "detail": detail}
        if gap:
            line["gap"] = True
        print(json.dumps(line), flush=True)
        if not ok and not gap:
            self.failed = True

    def version(self, text: str):
        print(json.dumps({"client": self.client, "version": text}), flush=True)

    def run(self, feature: str, fn):
        start = time.monotonic()
        try:
            detail = fn()
        except Gap as g:
            self.emit(feature, False, str(g), gap=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
            self.emit(feature, False, describe(e, start))
        else:
            self.emit(feature, True, detail or "")

    async def arun(self, feature: str, fn):
        start = time.monotonic()
        try:
            detail = await fn()
        except Gap as g:
            self.emit(feature, False, str(g), gap=True)
        except Exception as e:  # noqa: BLE001
            self.emit(feature, False, describe(e, start))
        else:
            self.emit(feature, True, detail or "")


def describe(e: BaseException, start: float) -> str:
    where = traceback.extract_tb(e.__traceback__)[-1]
    sqlstate = getattr(e, "sqlstate", None)
    state = f" [{sqlstate}]" if sqlstate else ""
    return (
        f"{type(e).__name__}{state}: {e} (line {where.lineno}, after "
        f"{time.monotonic() - start:.2f}s)"
    )


def wait_until(poll, what: str, timeout: float = WAIT):
    """Polls `poll()` (a query on another connection) until it is true, at most `timeout`."""
    deadline = time.monotonic() + timeout
    while not poll():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


async def await_until(poll, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while not await poll():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def expect_sqlstate(e: BaseException, code: str, got: str | None) -> str:
    if got != code:
        raise AssertionError(f"expected SQLSTATE {code}, got {got!r}: {e}") from e
    return f"SQLSTATE {got}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"


def finish(report: Report):
    sys.exit(1 if report.failed else 0)
