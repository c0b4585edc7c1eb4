"""asyncpg through rds-iam-proxy (see common.py)."""

import asyncio
import io
import time

import asyncpg

from common import (
    APP_NAME_SQL, COPY_IN_CHECK, COPY_IN_TABLE, COPY_OUT_QUERY, DATABASE, HOST, LARGE_SQL,
    PORT, UPSTREAM_SQL, USER, WAIT, Gap, Report, await_until, check_copy_in, check_copy_out,
    check_large_rows, copy_text, expect_sqlstate, finish, prepared_count_sql,
    running_query_sql, sleep_sql,
)

CLIENT = "asyncpg"
APP = "clients-asyncpg"


async def connect():
    return await asyncpg.connect(host=HOST, port=PORT, user=USER, database=DATABASE,
                                 server_settings={"application_name": APP}, timeout=10)


async def main():
    r = Report(CLIENT)
    r.version(f"asyncpg {asyncpg.__version__}")
    conn = None

    async def t_connect():
        nonlocal conn
        conn = await connect()
        user, ssl = await conn.fetchrow(UPSTREAM_SQL)
        assert user == USER and ssl, (user, ssl)
        return f"as {user}, no password; upstream TLS: {ssl}"
    await r.arun("connect", t_connect)
    if conn is None:
        return finish(r)

    async def t_simple():
        # execute() without arguments uses the simple query protocol: several statements.
        await conn.execute("create temp table simple_q (i int); insert into simple_q values (1);"
                           " insert into simple_q values (2)")
        n = await conn.fetchval("select count(*) from simple_q")
        assert n == 2, n
        return "three statements in one Query message"
    await r.arun("simple_query", t_simple)

    async def t_extended():
        row = await conn.fetchrow("select $1::int + 1, $2::text", 41, "é")
        assert tuple(row) == (42, "é"), row
        return "parameters bound server-side (Parse/Bind/Execute)"
    await r.arun("extended_query", t_extended)

    async def t_prepared():
        stmt = await conn.prepare("select $1::int * 3 /* asyncpg-prepared */")
        got = [await stmt.fetchval(i) for i in range(5)]
        assert got == [0, 3, 6, 9, 12], got
        n = await conn.fetchval(prepared_count_sql("asyncpg-prepared"))
        assert n == 1, f"{n} server-side prepared statements"
        return "conn.prepare(): one named statement on the server, executed 5 times"
    await r.arun("prepared", t_prepared)

    async def t_pipeline():
        await conn.execute("create temp table many (i int)")
        await conn.executemany("insert into many values ($1)", [(i,) for i in range(1000)])
        n = await conn.fetchval("select count(*) from many")
        assert n == 1000, n
        raise Gap("asyncpg has no pipeline-mode API; executemany() (which pipelines "
                  "Bind/Execute internally) was checked: 1000 rows inserted")
    await r.arun("pipeline", t_pipeline)

    async def t_rollback():
        await conn.execute("create temp table tx_test (i int)")

        class Boom(Exception):
            pass
        try:
            async with conn.transaction():
                await conn.execute("insert into tx_test values (1)")
                raise Boom()
        except Boom:
            pass
        n = await conn.fetchval("select count(*) from tx_test")
        assert n == 0, f"{n} rows after rollback"
        return "insert rolled back by conn.transaction()"
    await r.arun("transaction_rollback", t_rollback)

    async def t_large():
        start = time.monotonic()
        rows = await conn.fetch(LARGE_SQL)
        detail = check_large_rows((row[0], row[1]) for row in rows)
        return f"{detail} in {time.monotonic() - start:.2f}s"
    await r.arun("large_result", t_large)

    async def t_copy_in():
        await conn.execute(COPY_IN_TABLE)
        await conn.copy_to_table("copy_in", source=io.BytesIO(copy_text()), columns=["i", "t"])
        return check_copy_in(tuple(await conn.fetchrow(COPY_IN_CHECK)))
    await r.arun("copy_in", t_copy_in)

    async def t_copy_out():
        buf = bytearray()

        async def sink(chunk):
            buf.extend(chunk)
        await conn.copy_from_query(COPY_OUT_QUERY, output=sink)
        return check_copy_out(bytes(buf))
    await r.arun("copy_out", t_copy_out)

    async def t_notify():
        listener = await connect()
        try:
            got = asyncio.get_running_loop().create_future()

            def on_notify(_conn, pid, channel, payload):
                if not got.done():
                    got.set_result((pid, payload))
            await listener.add_listener("clients_asyncpg", on_notify)
            await conn.execute("select pg_notify('clients_asyncpg', 'hello from asyncpg')")
            pid, payload = await asyncio.wait_for(got, WAIT)
        finally:
            await listener.close()
        assert payload == "hello from asyncpg", payload
        return f"payload {payload!r} from pid {pid}"
    await r.arun("notify", t_notify)

    async def t_cancel():
        # asyncpg has no cancel() call: cancelling the task that runs a query sends a
        # CancelRequest. The server must stop the query and the connection stay usable.
        tag = "cancel-asyncpg"
        victim = await connect()
        try:
            task = asyncio.create_task(victim.execute(sleep_sql(tag)))

            async def running():
                return await conn.fetchval(running_query_sql(tag)) == 1
            await await_until(running, "the query to run")
            sent = time.monotonic()
            task.cancel()
            try:
                await asyncio.wait_for(task, WAIT)
                raise AssertionError("the query completed")
            except asyncio.CancelledError:
                pass

            async def stopped():
                return await conn.fetchval(running_query_sql(tag)) == 0
            await await_until(stopped, "the server to stop the query")
            took = time.monotonic() - sent
            assert await asyncio.wait_for(victim.fetchval("select 1"), WAIT) == 1
            return f"task.cancel() sent a CancelRequest: server stopped the query " \
                   f"{took:.3f}s later, connection usable (asyncpg surfaces CancelledError, " \
                   "not 57014)"
        finally:
            await victim.close()
    await r.arun("cancel", t_cancel)

    async def t_app_name():
        name = await conn.fetchval(APP_NAME_SQL)
        assert name == APP, name
        return f"server sees {name!r}"
    await r.arun("application_name", t_app_name)

    async def t_error():
        try:
            await conn.fetchval("select 1/0")
        except asyncpg.PostgresError as e:
            assert isinstance(e, asyncpg.exceptions.DivisionByZeroError), repr(e)
            detail = expect_sqlstate(e, "22012", e.sqlstate)
            assert await conn.fetchval("select 1") == 1
            return detail + "; connection still usable"
        raise AssertionError("no error")
    await r.arun("error_sqlstate", t_error)

    async def t_prepared_across_sessions():
        # Each new connection object starts its statement cache (and its __asyncpg_stmt_N__
        # names) afresh: through a pool that reuses the server connection, a statement left
        # over from the previous session would collide (42P05) or answer for the wrong query.
        pids = []
        for session in range(3):
            c = await connect()
            try:
                for i in range(5):
                    got = await c.fetchval(f"select $1::int + {session} /* asyncpg-reuse */", i)
                    assert got == i + session, (got, i, session)
                pids.append(await c.fetchval("select pg_backend_pid()"))
            finally:
                await c.close()
        return f"3 sessions in a row with cached prepared statements, on {len(set(pids))} " \
               "server backend(s)"
    await r.arun("prepared statements across sessions", t_prepared_across_sessions)

    await conn.close()
    finish(r)


if __name__ == "__main__":
    asyncio.run(main())
