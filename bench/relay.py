#!/usr/bin/python3
"""User-space WAN emulator: a TCP relay that adds latency (this kernel has no netem).

    relay.py --upstream 127.0.0.1:8000 [--listen 127.0.0.1:0] [--rtt-ms 50] [--aliases K]

Model, per accepted connection (accepted at t0):
  * connection setup costs one RTT: nothing goes through before t0 + RTT
    (the SYN / SYN-ACK round trip of a real connection);
  * every chunk read at time t from either side is delivered to the other side at
    max(t, t0 + RTT) + RTT/2, in order. Chunks are scheduled independently (a writer
    sleeps until each chunk's deadline), so back-to-back chunks are not serialized:
    the delay is pure propagation, no bandwidth limit.
  * a half-close (EOF) travels the same way, RTT/2 after it was seen.
--aliases K also listens on 127.0.0.2 ... 127.0.0.(K+1), same port: to a proxy each is
another origin with a pool of its own, so one proxy process can be measured cold K times.
Logs `listening on HOST:PORT` on stderr once bound. Loopback only.
"""
import argparse
import asyncio
import collections
import signal
import sys
import time


class Pipe:
    """One direction: read from `reader`, deliver to `writer` `delay` later."""

    def __init__(self, reader, writer, delay, not_before):
        self.reader, self.writer = reader, writer
        self.delay, self.not_before = delay, not_before
        self.queue = collections.deque()
        self.ready = asyncio.Event()

    async def pump_in(self):
        try:
            while True:
                data = await self.reader.read(65536)
                now = time.monotonic()
                at = max(now, self.not_before) + self.delay
                self.queue.append((at, data))  # b"" = EOF
                self.ready.set()
                if not data:
                    return
        except (ConnectionError, OSError):
            self.queue.append((time.monotonic(), None))  # reset: abort promptly
            self.ready.set()

    async def pump_out(self):
        try:
            while True:
                while not self.queue:
                    self.ready.clear()
                    await self.ready.wait()
                at, data = self.queue.popleft()
                wait = at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    self.writer.transport.abort()
                    return
                if not data:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass


async def handle(client_r, client_w, args):
    t0 = time.monotonic()
    host, port = args.upstream.rsplit(":", 1)
    try:
        origin_r, origin_w = await asyncio.open_connection(host, int(port))
    except OSError:
        client_w.transport.abort()
        return
    half = args.rtt_ms / 2000.0
    setup = t0 + args.rtt_ms / 1000.0
    up = Pipe(client_r, origin_w, half, setup)
    down = Pipe(origin_r, client_w, half, setup)
    tasks = [asyncio.ensure_future(c) for c in
             (up.pump_in(), up.pump_out(), down.pump_in(), down.pump_out())]
    try:
        # Done when both directions delivered their EOF (or one side reset).
        await asyncio.gather(tasks[1], tasks[3])
    finally:
        for t in tasks:
            t.cancel()
        for w in (client_w, origin_w):
            try:
                w.close()
            except Exception:
                pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="origin HOST:PORT (loopback)")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--aliases", type=int, default=0)
    args = ap.parse_args()
    for hp in (args.listen, args.upstream):
        if not hp.startswith(("127.", "localhost:", "[::1]")):
            sys.exit(f"relay: {hp}: loopback addresses only")
    host, port = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(lambda r, w: handle(r, w, args), host, int(port),
                                        reuse_address=True)
    addr = server.sockets[0].getsockname()
    aliases = [f"127.0.0.{i}" for i in range(2, args.aliases + 2)]
    if aliases and not host.startswith("127."):
        sys.exit("relay: --aliases needs a 127.x --listen address")
    extra = [await asyncio.start_server(lambda r, w: handle(r, w, args), a, addr[1],
                                        reuse_address=True) for a in aliases]
    print(f"listening on {addr[0]}:{addr[1]}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
