#!/usr/bin/python3
"""Plaintext backends for bench/compare, on 127.0.0.1 only.

    backend.py echo PORT     echoes every byte; closes when the client does
    backend.py source PORT   sends zeros until the client goes away
    backend.py sink PORT     reads and discards until EOF, then closes
    backend.py http PORT     HTTP/1.1 keep-alive: answers every request with 200 and 64 bytes

Prints "ready PORT" on stdout once listening. One process, asyncio, no threads.
"""
import asyncio
import sys

CHUNK = 256 * 1024
ZEROS = bytes(CHUNK)


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def source(reader, writer):
    try:
        while True:
            writer.write(ZEROS)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def sink(reader, writer):
    try:
        while await reader.read(CHUNK):
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


HTTP_ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n"
               + b"x" * 64)


async def http(reader, writer):
    """Requests without bodies (GET) only: the head ends at the empty line."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(HTTP_ANSWER)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(kind, port):
    handler = {"echo": echo, "source": source, "sink": sink, "http": http}[kind]
    server = await asyncio.start_server(handler, "127.0.0.1", port, backlog=4096,
                                        reuse_address=True, limit=CHUNK)
    print(f"ready {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("echo", "source", "sink", "http"):
        sys.exit("usage: backend.py echo|source|sink|http PORT")
    try:
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    except KeyboardInterrupt:
        pass
