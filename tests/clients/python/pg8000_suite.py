"""pg8000 (its native API) through rds-iam-proxy (see common.py)."""

import io
import time

import pg8000
import pg8000.native

from common import (
    APP_NAME_SQL, COPY_IN_CHECK, COPY_IN_SQL, COPY_IN_TABLE, COPY_OUT_SQL, DATABASE, HOST,
    LARGE_SQL, PORT, UPSTREAM_SQL, USER, WAIT, Gap, Report, check_copy_in, check_copy_out,
    check_large_rows, copy_text, finish, prepared_count_sql,
)

CLIENT = "pg8000"
APP = "clients-pg8000"


def connect():
    return pg8000.native.Connection(USER, host=HOST, port=PORT, database=DATABASE,
                                    application_name=APP, timeout=60)


def main():
    r = Report(CLIENT)
    r.version(f"pg8000 {pg8000.__version__}")
    conn = None

    def t_connect():
        nonlocal conn
        conn = connect()
        [[user, ssl]] = conn.run(UPSTREAM_SQL)
        assert user == USER and ssl, (user, ssl)
        return f"as {user}, no password; upstream TLS: {ssl}"
    r.run("connect", t_connect)
    if conn is None:
        return finish(r)

    def t_simple():
        # run() without parameters uses the simple query protocol: several statements.
        conn.run("create temp table simple_q (i int); insert into simple_q values (1);"
                 " insert into simple_q values (2)")
        [[n]] = conn.run("select count(*) from simple_q")
        assert n == 2, n
        return "three statements in one Query message"
    r.run("simple_query", t_simple)

    def t_extended():
        [row] = conn.run("select :a::int + 1, :b::text", a=41, b="é")
        assert row == [42, "é"], row
        return "parameters bound server-side (Parse/Bind/Execute)"
    r.run("extended_query", t_extended)

    def t_prepared():
        ps = conn.prepare("select :v::int * 3 /* pg8000-prepared */")
        got = [ps.run(v=i)[0][0] for i in range(5)]
        assert got == [0, 3, 6, 9, 12], got
        [[n]] = conn.run(prepared_count_sql("pg8000-prepared"))
        ps.close()
        assert n == 1, f"{n} server-side prepared statements"
        return "conn.prepare(): one named statement on the server, executed 5 times"
    r.run("prepared", t_prepared)

    def t_pipeline():
        raise Gap("pg8000 has no pipeline mode: it waits for each result before the next query")
    r.run("pipeline", t_pipeline)

    def t_rollback():
        conn.run("create temp table tx_test (i int)")
        conn.run("begin")
        conn.run("insert into tx_test values (1)")
        conn.run("rollback")
        [[n]] = conn.run("select count(*) from tx_test")
        assert n == 0, f"{n} rows after rollback"
        return "begin; insert; rollback"
    r.run("transaction_rollback", t_rollback)

    def t_large():
        start = time.monotonic()
        detail = check_large_rows(conn.run(LARGE_SQL))
        return f"{detail} in {time.monotonic() - start:.2f}s"
    r.run("large_result", t_large)

    def t_copy_in():
        conn.run(COPY_IN_TABLE)
        conn.run(COPY_IN_SQL, stream=io.BytesIO(copy_text()))
        [row] = conn.run(COPY_IN_CHECK)
        return check_copy_in(row)
    r.run("copy_in", t_copy_in)

    def t_copy_out():
        out = io.BytesIO()
        conn.run(COPY_OUT_SQL, stream=out)
        return check_copy_out(out.getvalue())
    r.run("copy_out", t_copy_out)

    def t_notify():
        listener = connect()
        try:
            listener.run("listen clients_pg8000")
            conn.run("select pg_notify('clients_pg8000', 'hello from pg8000')")
            # pg8000 has no call that waits for notifications: they are collected whenever
            # the connection reads from the server, so run trivial queries until one is there.
            deadline = time.monotonic() + WAIT
            while not listener.notifications:
                assert time.monotonic() < deadline, "no notification"
                listener.run("select 1")
            pid, channel, payload = listener.notifications.popleft()
        finally:
            listener.close()
        assert (channel, payload) == ("clients_pg8000", "hello from pg8000"), (channel, payload)
        return f"payload {payload!r} from pid {pid}"
    r.run("notify", t_notify)

    def t_cancel():
        raise Gap("pg8000 has no API to send a CancelRequest (cancel a running query)")
    r.run("cancel", t_cancel)

    def t_app_name():
        [[name]] = conn.run(APP_NAME_SQL)
        assert name == APP, name
        return f"server sees {name!r}"
    r.run("application_name", t_app_name)

    def t_error():
        try:
            conn.run("select 1/0")
        except pg8000.native.DatabaseError as e:
            fields = e.args[0]
            if fields.get("C") != "22012":
                raise AssertionError(f"expected SQLSTATE 22012, got {fields!r}") from e
            assert conn.run("select 1") == [[1]]
            return f"SQLSTATE {fields['C']}: {fields.get('M')}; connection still usable"
        raise AssertionError("no error")
    r.run("error_sqlstate", t_error)

    conn.close()
    finish(r)


if __name__ == "__main__":
    main()
