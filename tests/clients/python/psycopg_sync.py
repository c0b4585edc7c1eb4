"""psycopg 3, synchronous API, through rds-iam-proxy (see common.py)."""

import threading
import time

import psycopg
from psycopg import errors, pq

from common import (
    APP_NAME_SQL, COPY_IN_CHECK, COPY_IN_SQL, COPY_IN_TABLE, COPY_OUT_SQL, DATABASE, HOST,
    LARGE_SQL, PORT, TLS_PORT, UPSTREAM_SQL, USER, WAIT, Gap, Report, check_copy_in,
    check_copy_out, check_large_rows, copy_text, expect_sqlstate, finish,
    prepared_count_sql, running_query_sql, sleep_sql, wait_until,
)

CLIENT = "psycopg (sync)"
APP = "clients-psycopg-sync"


def connect(**kw):
    params = dict(host=HOST, port=PORT, user=USER, dbname=DATABASE, application_name=APP,
                  autocommit=True, connect_timeout=10)
    params.update(kw)
    return psycopg.connect(**params)


def main():
    r = Report(CLIENT)
    r.version(f"psycopg {psycopg.__version__}, libpq {pq.version() // 10000}.{pq.version() % 100}"
              f" ({pq.__impl__})")
    conn = None

    def t_connect():
        nonlocal conn
        conn = connect()
        user, ssl = conn.execute(UPSTREAM_SQL).fetchone()
        assert user == USER and ssl, (user, ssl)
        return f"as {user}, no password; upstream TLS: {ssl}"
    r.run("connect", t_connect)
    if conn is None:
        return finish(r)

    def t_simple():
        # No parameters: psycopg uses the simple query protocol, which alone allows two
        # statements in one string.
        cur = conn.execute("select 1; select 'two'")
        first = cur.fetchall()
        assert cur.nextset()
        second = cur.fetchall()
        assert (first, second) == ([(1,)], [("two",)]), (first, second)
        return "two statements in one Query message"
    r.run("simple_query", t_simple)

    def t_extended():
        row = conn.execute("select %s::int + 1, %s::text", [41, "é"]).fetchone()
        assert row == (42, "é"), row
        return "parameters bound server-side (Parse/Bind/Execute)"
    r.run("extended_query", t_extended)

    def t_prepared():
        sql = "select %s::int * 3 /* psycopg-prepared */"
        got = [conn.execute(sql, [i], prepare=True).fetchone()[0] for i in range(5)]
        assert got == [0, 3, 6, 9, 12], got
        n = conn.execute(prepared_count_sql("psycopg-prepared")).fetchone()[0]
        assert n == 1, f"{n} server-side prepared statements"
        return "prepare=True: one named statement on the server, executed 5 times"
    r.run("prepared", t_prepared)

    def t_pipeline():
        with conn.pipeline() as p:
            curs = [conn.execute("select %s::int", [i]) for i in range(10)]
            p.sync()
            got = [c.fetchone()[0] for c in curs]
        assert got == list(range(10)), got
        return "conn.pipeline(): 10 queries, one sync"
    r.run("pipeline", t_pipeline)

    def t_rollback():
        conn.execute("create temp table tx_test (i int)")

        class Boom(Exception):
            pass
        try:
            with conn.transaction():
                conn.execute("insert into tx_test values (1)")
                raise Boom()
        except Boom:
            pass
        n = conn.execute("select count(*) from tx_test").fetchone()[0]
        assert n == 0, f"{n} rows after rollback"
        return "insert rolled back by conn.transaction()"
    r.run("transaction_rollback", t_rollback)

    def t_large():
        start = time.monotonic()
        detail = check_large_rows(conn.execute(LARGE_SQL))
        return f"{detail} in {time.monotonic() - start:.2f}s"
    r.run("large_result", t_large)

    def t_copy_in():
        conn.execute(COPY_IN_TABLE)
        cur = conn.cursor()
        with cur.copy(COPY_IN_SQL) as copy:
            data = copy_text()
            for off in range(0, len(data), 65536):
                copy.write(data[off:off + 65536])
        return check_copy_in(conn.execute(COPY_IN_CHECK).fetchone())
    r.run("copy_in", t_copy_in)

    def t_copy_out():
        buf = bytearray()
        with conn.cursor().copy(COPY_OUT_SQL) as copy:
            for block in copy:
                buf += block
        return check_copy_out(bytes(buf))
    r.run("copy_out", t_copy_out)

    def t_notify():
        with connect() as listener:
            listener.execute("listen clients_psycopg")
            conn.execute("select pg_notify('clients_psycopg', 'hello from psycopg')")
            got = list(listener.notifies(timeout=WAIT, stop_after=1))
        assert got and got[0].payload == "hello from psycopg", got
        return f"payload {got[0].payload!r} from pid {got[0].pid}"
    r.run("notify", t_notify)

    def cancel_with(method: str):
        tag = f"cancel-psycopg-{method}"
        victim = connect()
        outcome = {}

        def run():
            try:
                victim.execute(sleep_sql(tag))
                outcome["error"] = None
            except psycopg.Error as e:
                outcome["error"] = e
                outcome["at"] = time.monotonic()
        t = threading.Thread(target=run)
        t.start()
        try:
            wait_until(lambda: conn.execute(running_query_sql(tag)).fetchone()[0] == 1,
                       "the query to run")
            sent = time.monotonic()
            getattr(victim, method)()
            t.join(WAIT)
            assert not t.is_alive(), "the query was not cancelled"
        finally:
            t.join()
            victim.close()
        e = outcome["error"]
        assert e is not None, "the query completed"
        assert isinstance(e, errors.QueryCanceled), repr(e)
        return f"conn.{method}(): {expect_sqlstate(e, '57014', e.sqlstate)}, " \
               f"{outcome['at'] - sent:.3f}s after the request"
    r.run("cancel", lambda: cancel_with("cancel"))
    r.run("cancel_safe", lambda: cancel_with("cancel_safe"))

    def t_app_name():
        name = conn.execute(APP_NAME_SQL).fetchone()[0]
        assert name == APP, name
        return f"server sees {name!r}"
    r.run("application_name", t_app_name)

    def t_error():
        try:
            conn.execute("select 1/0")
        except psycopg.Error as e:
            detail = expect_sqlstate(e, "22012", e.sqlstate)
            assert conn.execute("select 1").fetchone() == (1,)
            return detail + "; connection still usable"
        raise AssertionError("no error")
    r.run("error_sqlstate", t_error)

    def t_tls():
        if not TLS_PORT:
            raise Gap("no TLS listener (CLIENTS_TLS_PORT unset)")
        with connect(port=int(TLS_PORT), sslmode="require") as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("select 1").fetchone() == (1,)
        return "sslmode=require to the proxy's self-signed local TLS"
    def t_direct_tls():
        # PostgreSQL 17+ clients can skip SSLRequest and start with a TLS ClientHello (ALPN
        # "postgresql"); libpq >= 17 does so with sslnegotiation=direct.
        if pq.version() < 170000:
            raise Gap(f"libpq {pq.version()} has no sslnegotiation=direct (libpq 17+)")
        with connect(port=int(TLS_PORT), sslmode="require", sslnegotiation="direct") as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("select 1").fetchone() == (1,)
        return "sslnegotiation=direct (TLS ClientHello first, ALPN postgresql)"
    if TLS_PORT:
        r.run("sslmode=require (local TLS)", t_tls)
        r.run("sslnegotiation=direct (local TLS)", t_direct_tls)

    conn.close()
    finish(r)


if __name__ == "__main__":
    main()
