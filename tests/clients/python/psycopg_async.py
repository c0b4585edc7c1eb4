"""psycopg 3, asyncio API (AsyncConnection), through rds-iam-proxy (see common.py)."""

import asyncio
import time

import psycopg
from psycopg import errors, pq

from common import (
    APP_NAME_SQL, COPY_IN_CHECK, COPY_IN_SQL, COPY_IN_TABLE, COPY_OUT_SQL, DATABASE, HOST,
    LARGE_SQL, PORT, UPSTREAM_SQL, USER, WAIT, Report, await_until, check_copy_in,
    check_copy_out, check_large_rows, copy_text, expect_sqlstate, finish,
    prepared_count_sql, running_query_sql, sleep_sql,
)

CLIENT = "psycopg (async)"
APP = "clients-psycopg-async"


async def connect():
    return await psycopg.AsyncConnection.connect(
        host=HOST, port=PORT, user=USER, dbname=DATABASE, application_name=APP,
        autocommit=True, connect_timeout=10)


async def one(conn, sql, params=None, **kw):
    cur = await conn.execute(sql, params, **kw)
    return await cur.fetchone()


async def main():
    r = Report(CLIENT)
    r.version(f"psycopg {psycopg.__version__}, libpq {pq.version() // 10000}.{pq.version() % 100}"
              f" ({pq.__impl__})")
    conn = None

    async def t_connect():
        nonlocal conn
        conn = await connect()
        user, ssl = await one(conn, UPSTREAM_SQL)
        assert user == USER and ssl, (user, ssl)
        return f"as {user}, no password; upstream TLS: {ssl}"
    await r.arun("connect", t_connect)
    if conn is None:
        return finish(r)

    async def t_simple():
        cur = await conn.execute("select 1; select 'two'")
        first = await cur.fetchall()
        assert cur.nextset()
        second = await cur.fetchall()
        assert (first, second) == ([(1,)], [("two",)]), (first, second)
        return "two statements in one Query message"
    await r.arun("simple_query", t_simple)

    async def t_extended():
        row = await one(conn, "select %s::int + 1, %s::text", [41, "é"])
        assert row == (42, "é"), row
        return "parameters bound server-side (Parse/Bind/Execute)"
    await r.arun("extended_query", t_extended)

    async def t_prepared():
        sql = "select %s::int * 3 /* psycopg-async-prepared */"
        got = [(await one(conn, sql, [i], prepare=True))[0] for i in range(5)]
        assert got == [0, 3, 6, 9, 12], got
        (n,) = await one(conn, prepared_count_sql("psycopg-async-prepared"))
        assert n == 1, f"{n} server-side prepared statements"
        return "prepare=True: one named statement on the server, executed 5 times"
    await r.arun("prepared", t_prepared)

    async def t_pipeline():
        async with conn.pipeline() as p:
            curs = [await conn.execute("select %s::int", [i]) for i in range(10)]
            await p.sync()
            got = [(await c.fetchone())[0] for c in curs]
        assert got == list(range(10)), got
        return "conn.pipeline(): 10 queries, one sync"
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
        (n,) = await one(conn, "select count(*) from tx_test")
        assert n == 0, f"{n} rows after rollback"
        return "insert rolled back by conn.transaction()"
    await r.arun("transaction_rollback", t_rollback)

    async def t_large():
        start = time.monotonic()
        cur = await conn.execute(LARGE_SQL)
        detail = check_large_rows(await cur.fetchall())
        return f"{detail} in {time.monotonic() - start:.2f}s"
    await r.arun("large_result", t_large)

    async def t_copy_in():
        await conn.execute(COPY_IN_TABLE)
        async with conn.cursor() as cur:
            async with cur.copy(COPY_IN_SQL) as copy:
                data = copy_text()
                for off in range(0, len(data), 65536):
                    await copy.write(data[off:off + 65536])
        return check_copy_in(await one(conn, COPY_IN_CHECK))
    await r.arun("copy_in", t_copy_in)

    async def t_copy_out():
        buf = bytearray()
        async with conn.cursor() as cur:
            async with cur.copy(COPY_OUT_SQL) as copy:
                async for block in copy:
                    buf += block
        return check_copy_out(bytes(buf))
    await r.arun("copy_out", t_copy_out)

    async def t_notify():
        async with await connect() as listener:
            await listener.execute("listen clients_psycopg_async")
            await conn.execute("select pg_notify('clients_psycopg_async', 'hello async')")
            got = [n async for n in listener.notifies(timeout=WAIT, stop_after=1)]
        assert got and got[0].payload == "hello async", got
        return f"payload {got[0].payload!r} from pid {got[0].pid}"
    await r.arun("notify", t_notify)

    async def t_cancel():
        tag = "cancel-psycopg-async"
        victim = await connect()
        try:
            task = asyncio.create_task(victim.execute(sleep_sql(tag)))

            async def running():
                return (await one(conn, running_query_sql(tag)))[0] == 1
            await await_until(running, "the query to run")
            sent = time.monotonic()
            await victim.cancel_safe()
            try:
                await asyncio.wait_for(task, WAIT)
            except psycopg.Error as e:
                assert isinstance(e, errors.QueryCanceled), repr(e)
                return f"await conn.cancel_safe(): {expect_sqlstate(e, '57014', e.sqlstate)}, " \
                       f"{time.monotonic() - sent:.3f}s after the request"
            raise AssertionError("the query completed")
        finally:
            await victim.close()
    await r.arun("cancel", t_cancel)

    async def t_app_name():
        (name,) = await one(conn, APP_NAME_SQL)
        assert name == APP, name
        return f"server sees {name!r}"
    await r.arun("application_name", t_app_name)

    async def t_error():
        try:
            await conn.execute("select 1/0")
        except psycopg.Error as e:
            detail = expect_sqlstate(e, "22012", e.sqlstate)
            assert await one(conn, "select 1") == (1,)
            return detail + "; connection still usable"
        raise AssertionError("no error")
    await r.arun("error_sqlstate", t_error)

    await conn.close()
    finish(r)


if __name__ == "__main__":
    asyncio.run(main())
