"""Faults on either side of pooled: origins that race, hang or reset, clients that leave
half-way or crawl, and thousands of clients at once. Each case checks what the client
got, what the origin saw, and that pooled gives back every descriptor it took."""

import asyncio
import os
import random
import resource
import socket
import struct
import threading
import time

import pytest
import requests

from kit import (LoopbackServer, RawClient, connect, pattern, proxy_status_error, recv_until_close,
                 request_bytes, wait_until)

SANITIZED = bool(os.environ.get("POOLED_SANITIZED"))
MiB = 1024 * 1024


def open_fds(p):
    return len(os.listdir("/proc/%d/fd" % p.pid))


def assert_fds_return(p, baseline, timeout=5):
    back = wait_until(lambda: open_fds(p) <= baseline, timeout)
    assert back, "pooled holds %d fds, %d before the fault" % (open_fds(p), baseline)


def assert_still_serves(p, o):
    with RawClient(p.port, timeout=10) as c:
        c.send(request_bytes("GET", o.url("/bytes/3"), o.authority))
        r = c.read_response()
    assert r.status == 200 and r.body == pattern(0, 3)


def raise_fd_limit(wanted):
    """Raises this process's RLIMIT_NOFILE (pooled, started after, inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d: cannot hold that many sockets" % (hard, wanted))
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# --------------------------------------------------------------------------------------
# A small asyncio HTTP/1.1 client over raw keep-alive sockets: thousands of connections
# from one thread, cheap enough per request for tens of thousands of requests.
# --------------------------------------------------------------------------------------

async def read_response(reader):
    """(status, headers dict lower-cased, body) of one Content-Length framed response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def exchange(conn, o, path):
    reader, writer = conn
    writer.write(request_bytes("GET", o.url(path), o.authority))
    return await read_response(reader)


async def open_many(port, n, parallel=200):
    """n client connections, all open at once (connects paced: the backlog is finite)."""
    gate = asyncio.Semaphore(parallel)

    async def one():
        async with gate:
            return await asyncio.open_connection("127.0.0.1", port)

    return await asyncio.gather(*(one() for _ in range(n)))


def close_all(conns):
    for _, writer in conns:
        writer.close()


# --------------------------------------------------------------------------------------
# The origin closes idle keep-alive connections on its own timer
# --------------------------------------------------------------------------------------

# Under ASan+UBSan everything runs 3-5x slower: fewer requests keep the test under 20 s
# while still racing hundreds of times.
RACE_REQUESTS = 3000 if SANITIZED else 10000
RACE_CLIENTS = 100
ORIGIN_IDLE_MS = 40  # below the 50 ms floor of what pooled learns, so races stay possible


def test_origin_idle_close_races_lose_none_of_ten_thousand_requests(origin, pooled):
    # The clients send in rounds: an upstream connection's idle time is the rest of its
    # round plus the pause, spread across the origin's idle timer, so pooled keeps picking
    # up connections the origin is closing just then. A request that crosses the origin's
    # FIN must be replayed on a fresh connection.
    o = origin("--idle-close-ms", str(ORIGIN_IDLE_MS))
    p = pooled({"pool": {"max_idle_per_host": RACE_CLIENTS, "max_connections_per_host": RACE_CLIENTS}})
    failures = []
    done = [0]
    rounds = -(-RACE_REQUESTS // RACE_CLIENTS)
    # Client c takes part in rounds [0, per_client[c]): exactly RACE_REQUESTS in all.
    per_client = [rounds] * RACE_CLIENTS
    for c in range(RACE_CLIENTS * rounds - RACE_REQUESTS):
        per_client[c] -= 1
    expected = [sum(1 for n in per_client if n > i) for i in range(rounds)]

    async def client(conn, rnd, n_rounds, go, finished, completed):
        for i in range(n_rounds):
            await go[i].wait()
            n = rnd.choice((0, 1, 100, 4096))
            try:
                status, headers, body = await asyncio.wait_for(exchange(conn, o, "/bytes/%d" % n), 10)
                if status != 200 or body != pattern(0, n):
                    failures.append((i, status, headers.get("proxy-status")))
                else:
                    done[0] += 1
            except Exception as e:
                failures.append((i, repr(e)))
                conn[1].close()
                conn = await asyncio.open_connection("127.0.0.1", p.port)
            completed[i] += 1
            if completed[i] == expected[i]:
                finished[i].set()

    async def run():
        rnd = random.Random(7)
        conns = await open_many(p.port, RACE_CLIENTS)
        go = [asyncio.Event() for _ in range(rounds)]
        finished = [asyncio.Event() for _ in range(rounds)]
        completed = [0] * rounds
        tasks = [asyncio.ensure_future(client(c, random.Random(k), per_client[k], go, finished, completed))
                 for k, c in enumerate(conns)]
        for i in range(rounds):
            # Some connections are reused alive, some found closed, some cross the close.
            await asyncio.sleep(rnd.uniform(0, ORIGIN_IDLE_MS) / 1000.0)
            go[i].set()
            await asyncio.wait_for(finished[i].wait(), 30)
        await asyncio.gather(*tasks)
        close_all(conns)

    start = time.monotonic()
    asyncio.run(run())
    elapsed = time.monotonic() - start
    st = o.stats()
    log = p.wait_access_log(RACE_REQUESTS, timeout=10)
    retried = sum(r["retries"] for r in log)
    print("%d requests in %.1fs: origin idle closes %d, races %d; pooled replays %d; origin conns %d"
          % (done[0], elapsed, st["idle_closes"], st["idle_close_races"], retried,
             st["connections_accepted"]))
    bad = [r for r in log if r["error"]]
    assert failures == [], (failures[:5], bad[:5])
    assert done[0] == RACE_REQUESTS
    # Each request reached the origin exactly once: a raced one was never answered there.
    assert st["requests"] == RACE_REQUESTS, st
    # The races really happened (the origin read requests that crossed its FIN).
    assert st["idle_close_races"] >= 10, st
    assert retried >= 1


# --------------------------------------------------------------------------------------
# The origin accepts and never answers
# --------------------------------------------------------------------------------------

def test_origin_that_never_answers_gets_504_and_its_connection_is_freed(origin, pooled):
    o = origin()
    p = pooled({"timeouts": {"upstream_first_byte": "1s"}})
    baseline = open_fds(p)
    with RawClient(p.port, timeout=10) as c:
        start = time.monotonic()
        c.send(request_bytes("GET", o.url("/hang"), o.authority))
        r = c.read_response()
        elapsed = time.monotonic() - start
        assert r.status == 504 and proxy_status_error(r) == "http_response_timeout", r.headers
        assert 0.9 <= elapsed < 3.0, elapsed
        # The client connection stays usable; only the upstream one is gone.
        assert wait_until(lambda: o.stats()["connections_open"] == 0, 5), o.stats()
        assert wait_until(lambda: open_fds(p) == baseline + 1, 5), open_fds(p)  # the client alone
        c.send(request_bytes("GET", o.url("/bytes/5"), o.authority))
        assert c.read_response().body == pattern(0, 5)
    assert o.stats()["connections_accepted"] == 2  # the hung one was not reused
    assert_fds_return(p, baseline + 1)  # + the idle connection the /bytes/5 left
    assert p.wait_access_log(2)[0]["error"] == "http_response_timeout"


def test_origin_that_never_accepts_gets_504_and_the_socket_is_closed(pooled):
    # A listener whose accept queue nobody drains: the kernel completes the handshake,
    # takes the request bytes, and nothing ever answers.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    try:
        p = pooled({"timeouts": {"upstream_first_byte": "1s"}})
        baseline = open_fds(p)
        with RawClient(p.port, timeout=10) as c:
            c.send(request_bytes("GET", "http://127.0.0.1:%d/x" % port, "127.0.0.1:%d" % port))
            r = c.read_response()
        assert r.status == 504 and proxy_status_error(r) == "http_response_timeout", r.headers
        assert_fds_return(p, baseline)
        # What pooled left in the queue: the request, then its close.
        srv.settimeout(5)
        conn, _ = srv.accept()
        got = recv_until_close(conn, 5)
        conn.close()
        assert got.startswith(b"GET /x HTTP/1.1\r\n"), got[:100]
    finally:
        srv.close()


# --------------------------------------------------------------------------------------
# The origin accepts, then resets before any response byte
# --------------------------------------------------------------------------------------

def test_origin_reset_before_any_response_byte_is_502_connection_terminated(origin, pooled):
    o = origin()
    p = pooled()
    baseline = open_fds(p)
    with RawClient(p.port, timeout=10) as c:
        c.send(request_bytes("GET", o.url("/reset-before-head"), o.authority))
        r = c.read_response()
    assert r.status == 502, r
    assert proxy_status_error(r) == "connection_terminated", r.headers
    rec = p.wait_access_log(1)[0]
    assert rec["status"] == 502 and rec["error"] == "connection_terminated", rec
    # A fresh connection failing is no stale keep-alive race: nothing is replayed.
    assert rec["retries"] == 0, rec
    assert o.stats()["requests_by_path"] == {"/reset-before-head": 1}
    assert_fds_return(p, baseline)


def test_reused_connection_reset_before_the_response_is_replayed_once_for_a_get(origin, pooled):
    o = origin()
    p = pooled()
    s = requests.Session()
    s.proxies = {"http": p.proxy_url}
    assert s.get(o.url("/bytes/1"), timeout=10).status_code == 200
    # The reused connection resets; the replay goes to a fresh one, where it is answered.
    r = s.get(o.url("/reset-before-head?reused_only=1"), timeout=10)
    assert r.status_code == 200 and r.content == b"fresh"
    recs = p.wait_access_log(2)
    assert [x["retries"] for x in recs] == [0, 1], recs
    assert recs[1]["reused"] is False and recs[1]["error"] == ""
    st = o.stats()
    assert st["connections_accepted"] == 2
    assert st["requests_by_path"]["/reset-before-head"] == 2


def test_a_replayed_get_that_fails_again_is_502_after_exactly_one_replay(origin, pooled):
    o = origin()
    p = pooled()
    s = requests.Session()
    s.proxies = {"http": p.proxy_url}
    assert s.get(o.url("/bytes/1"), timeout=10).status_code == 200
    r = s.get(o.url("/reset-before-head"), timeout=10)
    assert r.status_code == 502
    assert proxy_status_error(r.headers) == "connection_terminated", r.headers
    assert p.wait_access_log(2)[1]["retries"] == 1
    assert o.stats()["requests_by_path"]["/reset-before-head"] == 2


def test_reused_connection_reset_before_the_response_is_not_replayed_for_a_post(origin, pooled):
    o = origin()
    p = pooled()
    s = requests.Session()
    s.proxies = {"http": p.proxy_url}
    assert s.get(o.url("/bytes/1"), timeout=10).status_code == 200
    r = s.post(o.url("/reset-before-head?reused_only=1"), data=b"once only", timeout=10)
    assert r.status_code == 502
    assert proxy_status_error(r.headers) == "connection_terminated", r.headers
    recs = p.wait_access_log(2)
    assert recs[1]["reused"] is True and recs[1]["retries"] == 0, recs
    assert o.stats()["requests_by_path"]["/reset-before-head"] == 1


# --------------------------------------------------------------------------------------
# The origin answers an upload early and closes
# --------------------------------------------------------------------------------------

EARLY_ANSWER_ROUNDS = 12


def upload_until_refused(s, total, seconds):
    """Sends `total` body bytes as fast as the socket takes them, until pooled stops taking
    them (timeout) or closes; returns what was sent."""
    s.settimeout(0.3)
    block = b"u" * (256 * 1024)
    sent = 0
    deadline = time.monotonic() + seconds
    while sent < total and time.monotonic() < deadline:
        try:
            sent += s.send(block)
        except (socket.timeout, OSError):
            break
    return sent


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
def test_an_origin_that_answers_413_and_closes_mid_upload_ends_the_exchange_cleanly(origin, pooled, reset):
    # pooled's body writes fail (EPIPE/ECONNRESET) in the same loop turns as it reads the
    # 413 and discards the connection: the failure, reported a turn later, must find the
    # connection gone, not run on freed memory (ASan aborts pooled if it does). Without
    # io_uring every write is a direct write(2) that can fail at once.
    o = origin()
    p = pooled({"buffers": {"io_uring": False}})
    baseline = open_fds(p)
    path = "/answer-early/413" + ("?reset=1" if reset else "")
    for _ in range(EARLY_ANSWER_ROUNDS):
        s = connect(p.port)
        try:
            s.sendall(request_bytes("POST", o.url(path), o.authority,
                                    [("Content-Length", str(64 * MiB))]))
            upload_until_refused(s, 64 * MiB, 5)
            got = recv_until_close(s, 5)
        finally:
            s.close()
        assert p.alive(), "pooled died (exit %s) after an early 413" % p.proc.returncode
        # The 413 arrives unless pooled saw the reset before the answer (then a 502).
        assert got == b"" or got.startswith((b"HTTP/1.1 413", b"HTTP/1.1 502")), got[:200]
    recs = p.wait_access_log(EARLY_ANSWER_ROUNDS)
    assert all(r["status"] in (413, 502) for r in recs), recs
    assert_fds_return(p, baseline)
    assert_still_serves(p, o)


class FirstConnectionResets(LoopbackServer):
    """An origin on a listen(0) socket: the test fills its accept queue to hold connects
    back. The first connection it serves resets after reading a request; later ones
    answer 200 "ok" to every request."""

    def __init__(self):
        self.listen(backlog=0)
        self.authority = "127.0.0.1:%d" % self.port
        self.requests = []

    def handle(self, conn, n):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            self.requests.append(head.split(b" ")[1].decode())
            if n == 1:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_a_warm_connection_never_used_that_resets_is_replayed_like_a_reused_one(pooled):
    # A connection opened for a client that left before it connected waits warm in the
    # pool, where the origin may drop it unseen, exactly like a reused one. Its first
    # request failing before any answer is the same race, and a GET is replayed.
    o = FirstConnectionResets()
    try:
        p = pooled()
        queue_filler = socket.create_connection(("127.0.0.1", o.port))  # connects now wait
        with RawClient(p.port) as gone:
            gone.send(request_bytes("GET", "http://%s/gone" % o.authority, o.authority))
            time.sleep(0.3)
        o.sock.accept()[0].close()  # the filler: pooled's connect retries and completes
        queue_filler.close()
        o.serve()
        assert wait_until(lambda: o.accepted == 1, 5), "pooled's warm connection never came"
        time.sleep(0.1)
        with RawClient(p.port, timeout=10) as c:
            c.send(request_bytes("GET", "http://%s/y" % o.authority, o.authority))
            r = c.read_response()
        assert r.status == 200 and r.body == b"ok", r
        rec = [x for x in p.wait_access_log(2) if x["path"] == "/y"][0]
        assert rec["retries"] == 1 and rec["error"] == "", rec
        assert o.requests == ["/y", "/y"] and o.accepted == 2
    finally:
        o.close()


# --------------------------------------------------------------------------------------
# The client leaves half-way
# --------------------------------------------------------------------------------------

def test_client_disconnect_mid_upload_closes_the_origin_connection_and_frees_fds(origin, pooled):
    o = origin()
    p = pooled()
    baseline = open_fds(p)
    s = connect(p.port)
    s.sendall(request_bytes("POST", o.url("/echo?discard=1"), o.authority,
                            [("Content-Length", str(64 * MiB))]))
    block = b"u" * MiB
    for _ in range(8):
        s.sendall(block)
    assert wait_until(lambda: o.stats()["requests_in_flight"] == 1, 5), o.stats()
    s.close()
    # The origin got a request body that will never be complete: the connection must go.
    assert wait_until(lambda: o.stats()["connections_open"] == 0, 5), o.stats()
    assert o.stats()["requests_in_flight"] == 0
    assert_fds_return(p, baseline)
    assert p.alive(), "pooled died (exit %s) when a client left mid-upload" % p.proc.returncode
    assert_still_serves(p, o)
    assert o.stats()["connections_accepted"] == 2  # the half-fed one was not reused


def test_client_disconnect_mid_download_closes_the_origin_connection_and_frees_fds(origin, pooled):
    o = origin()
    p = pooled()
    baseline = open_fds(p)
    s = connect(p.port)
    s.sendall(request_bytes("GET", o.url("/bytes/%d" % (256 * MiB)), o.authority))
    got = 0
    while got < 4 * MiB:
        data = s.recv(MiB)
        assert data
        got += len(data)
    s.close()
    assert wait_until(lambda: o.stats()["connections_open"] == 0, 5), o.stats()
    assert_fds_return(p, baseline)
    rec = p.wait_access_log(1)[0]
    assert rec["error"] != "" and 0 < rec["bytes_out"] < 256 * MiB, rec
    assert_still_serves(p, o)
    assert o.stats()["connections_accepted"] == 2


def reset_socket(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST


@pytest.mark.parametrize("io_uring", [True, False], ids=["io_uring", "write"])
@pytest.mark.parametrize("response", ["flowing", "backed_up"])
def test_a_client_that_resets_while_its_reads_are_paused_ends_its_exchange_at_once(
        origin, pooled, io_uring, response):
    # The client asks for a large response and pipelines enough bytes behind it that
    # pooled stops reading it, and reads nothing. The response either comes slowly in
    # large writes the kernel's buffers still take ("flowing"), or fast, so pooled's
    # writes back up and it holds the origin ("backed_up"). Then the client resets.
    # Nothing reads the client any more, so only a failing write can tell, and that
    # must end the exchange at once (log record, origin connection closed), not the
    # client_idle timeout (or the end of the response) later.
    o = origin()
    p = pooled({"timeouts": {"client_idle": "30s"}, "buffers": {"io_uring": io_uring}})
    baseline = open_fds(p)
    size = 1024 * MiB if response == "backed_up" else 64 * MiB
    path = "/bytes/%d" % size if response == "backed_up" else "/paced/%d?chunk=49152" % size
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(10)
    s.connect(("127.0.0.1", p.port))
    s.sendall(request_bytes("GET", o.url(path), o.authority) +
              b"X" * (256 * 1024))  # a pipelined "request" never parsed: reading stops
    assert wait_until(lambda: o.stats()["requests_in_flight"] == 1, 5), o.stats()
    time.sleep(0.5)  # some of the response is out (backed up: pooled holds the origin)
    assert o.stats()["connections_open"] == 1
    reset_socket(s)
    start = time.monotonic()
    assert wait_until(lambda: o.stats()["connections_open"] == 0, 2), \
        "the origin connection outlived the client's reset: %s" % o.stats()
    recs = p.wait_access_log(1, timeout=max(0.1, 2 - (time.monotonic() - start)))
    assert len(recs) == 1 and recs[0]["error"] == "client_disconnected", recs
    assert 0 < recs[0]["bytes_out"] < size, recs
    assert_fds_return(p, baseline)
    assert_still_serves(p, o)


# --------------------------------------------------------------------------------------
# Slowloris
# --------------------------------------------------------------------------------------

def test_slowloris_at_one_byte_per_second_gets_408_while_others_are_served(origin, pooled):
    o = origin()
    p = pooled({"timeouts": {"request_header": "3s"}})
    data = request_bytes("GET", o.url("/bytes/1"), o.authority)
    crawlers = [connect(p.port) for _ in range(10)]
    answers = [b""] * len(crawlers)
    closed_after = [None] * len(crawlers)
    start = time.monotonic()

    def crawl(i, s):
        s.settimeout(1.0)
        for k in range(len(data)):
            if time.monotonic() - start > 8:
                return
            try:
                s.sendall(data[k:k + 1])
                got = s.recv(65536)  # up to 1 s: the pace of one byte a second
            except socket.timeout:
                continue
            except OSError:
                closed_after[i] = time.monotonic() - start
                return
            answers[i] += got
            s.settimeout(2)
            try:
                while got:
                    got = s.recv(65536)
                    answers[i] += got
            except OSError:
                pass
            closed_after[i] = time.monotonic() - start
            return

    threads = [threading.Thread(target=crawl, args=(i, s)) for i, s in enumerate(crawlers)]
    for t in threads:
        t.start()
    # Meanwhile a normal client is served as usual.
    latencies = []
    with requests.Session() as session:
        session.proxies = {"http": p.proxy_url}
        while time.monotonic() - start < 3.5:
            t0 = time.monotonic()
            r = session.get(o.url("/bytes/10"), timeout=5)
            latencies.append(time.monotonic() - t0)
            assert r.status_code == 200 and r.content == pattern(0, 10)
            time.sleep(0.1)
    for t in threads:
        t.join(15)
    for s in crawlers:
        s.close()
    assert all(c is not None for c in closed_after), "a crawler was kept for 8 s: %r" % closed_after
    for i, answer in enumerate(answers):
        assert answer.startswith(b"HTTP/1.1 408 "), (i, answer[:200])
        assert 2.5 <= closed_after[i] < 5.5, closed_after
    assert len(latencies) >= 10 and max(latencies) < 1.0, latencies
    # Only the normal client's requests reached the origin.
    assert o.stats()["requests"] == len(latencies)


# --------------------------------------------------------------------------------------
# Thousands of clients at once
# --------------------------------------------------------------------------------------

CROWD = 5000


def test_five_thousand_concurrent_clients_are_all_served(origin, pooled):
    raise_fd_limit(2 * CROWD + 1000)  # our sockets + pooled's, each process on its own
    o = origin()
    p = pooled({"pool": {"max_connections_per_host": 64, "max_idle_per_host": 32,
                         "max_pending": 2 * CROWD, "queue_timeout": "60s"}})
    baseline = open_fds(p)

    async def run():
        conns = await open_many(p.port, CROWD)
        # All of them open in pooled at the same time.
        held = wait_until(lambda: open_fds(p) >= baseline + CROWD, 20)
        assert held, "pooled holds %d fds, expected %d clients" % (open_fds(p) - baseline, CROWD)
        results = await asyncio.gather(*(exchange(c, o, "/bytes/%d" % (i % 97)) for i, c in enumerate(conns)),
                                       return_exceptions=True)
        close_all(conns)
        return results

    start = time.monotonic()
    results = asyncio.run(run())
    elapsed = time.monotonic() - start
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == [], errors[:5]
    bad = [(i, r[0], r[1].get("proxy-status")) for i, r in enumerate(results)
           if r[0] != 200 or r[2] != pattern(0, i % 97)]
    assert bad == [], bad[:10]
    st = o.stats()
    print("%d concurrent clients served in %.1fs over %d origin connections"
          % (CROWD, elapsed, st["connections_accepted"]))
    assert st["requests"] == CROWD
    # The queue reuses the connections it has rather than closing them at max_idle_per_host
    # and opening new ones (that churned through ~1000); only when the queue runs dry for
    # a moment do idle ones over the cap go.
    assert st["connections_accepted"] <= 2 * 64, st
    assert st["connections_peak"] <= 64  # max_connections_per_host
    # The clients are gone; only idle upstream connections (max_idle_per_host) remain.
    assert_fds_return(p, baseline + 32, timeout=10)


def test_clients_over_max_client_connections_are_refused_and_the_rest_still_served(origin, pooled):
    limit, excess = 1000, 200
    raise_fd_limit(2 * (limit + excess) + 1000)
    o = origin()
    p = pooled({"limits": {"max_client_connections": limit}})

    async def run():
        conns = await open_many(p.port, limit)
        first = await asyncio.gather(*(exchange(c, o, "/bytes/7") for c in conns))
        assert all(s == 200 and b == pattern(0, 7) for s, _, b in first)
        # Over the limit: an immediate 503, then the connection is closed.
        extra = await open_many(p.port, excess)

        async def refused(conn):
            reader, writer = conn
            writer.write(request_bytes("GET", o.url("/bytes/7"), o.authority))
            status, headers, _ = await read_response(reader)
            rest = await reader.read()
            writer.close()
            return status, headers.get("proxy-status"), rest

        refusals = await asyncio.gather(*(refused(c) for c in extra), return_exceptions=True)
        # The clients inside the limit keep being served on their open connections.
        second = await asyncio.gather(*(exchange(c, o, "/bytes/9") for c in conns))
        close_all(conns)
        return refusals, second

    refusals, second = asyncio.run(run())
    errors = [r for r in refusals if isinstance(r, Exception)]
    assert errors == [], "%d of %d refused clients saw no clean 503: %r" % (len(errors), excess, errors[:5])
    assert all(r[0] == 503 and "connection_limit_reached" in r[1] and r[2] == b"" for r in refusals), \
        refusals[:5]
    assert all(s == 200 and b == pattern(0, 9) for s, _, b in second)
    assert o.stats()["requests"] == 2 * limit  # nothing from the refused ones
