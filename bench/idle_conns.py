#!/usr/bin/env python3
"""Opens idle PostgreSQL sessions through the proxy and holds them.

usage: idle_conns.py HOST PORT USER DATABASE COUNT...

For each COUNT (ascending) it opens sessions until COUNT are held (each one completed its
startup: ReadyForQuery received), prints "held COUNT" and waits for a line on stdin before
going on; at the end it closes everything with Terminate. Plain protocol, no driver.
"""

import asyncio
import struct
import sys

CONCURRENCY = 64


def startup_message(user, database):
    body = struct.pack("!i", 196608)
    for k, v in (("user", user), ("database", database), ("application_name", "bench-idle")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


async def open_one(host, port, msg):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(msg)
    await writer.drain()
    while True:
        head = await reader.readexactly(5)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        body = await reader.readexactly(length - 4)
        if kind == b"E":
            raise RuntimeError("server error: %r" % body)
        if kind == b"Z":
            return reader, writer


async def main():
    host, port, user, database = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    counts = [int(c) for c in sys.argv[5:]]
    msg = startup_message(user, database)
    held = []
    sem = asyncio.Semaphore(CONCURRENCY)
    loop = asyncio.get_running_loop()

    async def guarded():
        async with sem:
            return await open_one(host, port, msg)

    for count in counts:
        need = count - len(held)
        if need > 0:
            held.extend(await asyncio.gather(*(guarded() for _ in range(need))))
        print("held %d" % len(held), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
    for _, writer in held:
        writer.write(b"X\0\0\0\4")
    for _, writer in held:
        try:
            await writer.drain()
            writer.close()
        except OSError:
            pass
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    asyncio.run(main())
