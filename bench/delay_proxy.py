#!/usr/bin/python3
"""A TCP proxy that puts a round trip between its clients and a server, as
if the server were far away: each byte arrives half the RTT after it was
sent, in each direction, and a new connection pays one RTT for its TCP
handshake before its first byte goes. No bandwidth limit, no loss.

  delay_proxy.py --listen PORT --to HOST:PORT [--rtt-ms 20] [--count FILE]

Prints "listening on PORT" once ready. With --count, writes the number of
connections accepted so far to FILE after each accept (the bench counts the
connections each path opens).
"""
import argparse
import asyncio
import time


async def pump(reader, writer, delay, first_extra):
    """Copies reader to writer, each chunk `delay` seconds late (the first
    `first_extra` later still), keeping order."""
    queue = asyncio.Queue()

    async def read():
        extra = first_extra
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + delay + extra, data))
            extra = 0
            if not data:
                return

    async def write():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--rtt-ms", type=float, default=20)
    parser.add_argument("--count")
    args = parser.parse_args()
    host, port = args.to.rsplit(":", 1)
    half = args.rtt_ms / 2000
    accepted = 0

    async def serve(client_reader, client_writer):
        nonlocal accepted
        accepted += 1
        if args.count:
            with open(args.count, "w") as out:
                out.write(f"{accepted}\n")
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        for w in (client_writer, server_writer):
            w.transport.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY
        # The TCP handshake's round trip, before the client's first byte.
        await asyncio.gather(pump(client_reader, server_writer, half, 2 * half),
                             pump(server_reader, client_writer, half, 0))

    server = await asyncio.start_server(serve, "127.0.0.1", args.listen)
    print(f"listening on {args.listen}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
