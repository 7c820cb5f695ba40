"""1,000 concurrent mTLS connections through the gateway, all open at once, each echoing its
own payload; bounded in count and time (asyncio clients and backend in this process)."""

import asyncio
import resource
import time

import pytest

from gateway_helpers import (Gateway, MiniPki, client_context, fetch_metrics, free_port,
                             gateway_flags, metric)

N = 1000


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} file descriptors, hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def scenario(port, ctx, mport, backend_ready, gateway_up):
    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=2048)
    backend_ready.set_result(server.sockets[0].getsockname()[1])
    await gateway_up
    sem = asyncio.Semaphore(100)  # handshakes in flight at once
    opened = []

    async def one(i):
        async with sem:
            r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                        server_hostname="localhost"), 20)
        payload = f"conn {i}\n".encode()
        w.write(payload)
        await w.drain()
        got = await asyncio.wait_for(r.readexactly(len(payload)), 20)
        assert got == payload
        opened.append(w)

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(N)))
    elapsed = time.monotonic() - t0
    text = await asyncio.get_running_loop().run_in_executor(None, fetch_metrics, mport)
    active = metric(text, "twoway_active_connections")
    for w in opened:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in opened), return_exceptions=True)
    server.close()
    await server.wait_closed()
    return elapsed, active, text


def test_thousand_concurrent_connections(tmp_path):
    raise_fd_limit(4 * N + 256)
    ca = MiniPki(tmp_path / "ca")
    server, alice = ca.server(), ca.issue("alice")
    ctx = client_context(ca, alice)
    port, mport = free_port(), free_port()
    gw = None

    async def main():
        nonlocal gw
        loop = asyncio.get_running_loop()
        backend_ready, gateway_up = loop.create_future(), loop.create_future()
        task = asyncio.ensure_future(scenario(port, ctx, mport, backend_ready, gateway_up))
        bport = await backend_ready
        gw = await loop.run_in_executor(None, lambda: Gateway(
            gateway_flags(ca, server, port, f"127.0.0.1:{bport}",
                          extra=["--metrics", f"127.0.0.1:{mport}", "--log-level", "warn"])))
        gateway_up.set_result(True)
        return await asyncio.wait_for(task, 55)

    try:
        elapsed, active, text = asyncio.run(main())
        assert active == N, text
        assert metric(text, "twoway_handshakes_total", {"result": "ok"}) == N
        print(f"{N} connections in {elapsed:.1f}s")
        assert elapsed < 50, f"{N} connections took {elapsed:.1f}s"
    finally:
        if gw is not None:
            assert gw.stop() == 0, gw.output()[-3000:]
