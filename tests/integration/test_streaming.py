"""Bodies stream through pooled with bounded memory, and broken transfers stay broken."""

import time

from kit import RawClient, connect, request_bytes, rss_limit_kib, run_curl, wait_until

MiB = 1024 * 1024
RSS_LIMIT_KIB = rss_limit_kib(32 * 1024)


def assert_still_serves(p, o):
    with RawClient(p.port, timeout=10) as c:
        c.send(request_bytes("GET", o.url("/bytes/3"), o.authority))
        assert c.read_response().status == 200


def test_one_gib_download_at_full_speed_with_flat_memory(origin, pooled):
    o = origin()
    p = pooled()
    n = 1024 * MiB
    cp, elapsed = run_curl(["-x", p.proxy_url, "-o", "/dev/null", "-w", "%{size_download}",
                            "--max-time", "120", o.url("/bytes/%d" % n)], timeout=150)
    assert cp.returncode == 0, cp.stderr
    assert int(cp.stdout) == n
    hwm = p.peak_rss_kib()
    assert hwm < RSS_LIMIT_KIB, "pooled VmHWM %d KiB after a 1 GiB download" % hwm
    rec = p.wait_access_log(1)[0]
    assert rec["bytes_out"] == n
    print("1 GiB through pooled in %.2fs (%.0f MB/s), VmHWM %d KiB" % (elapsed, n / elapsed / 1e6, hwm))


def test_slow_reader_applies_backpressure_instead_of_buffering(origin, pooled):
    o = origin()
    p = pooled()
    n = 512 * MiB
    cp, elapsed = run_curl(["-x", p.proxy_url, "-o", "/dev/null", "-w", "%{size_download}",
                            "--limit-rate", "10M", "--max-time", "5", o.url("/bytes/%d" % n)], timeout=30)
    assert cp.returncode == 28, (cp.returncode, cp.stderr)  # curl's timeout: it was still reading
    assert 0 < int(cp.stdout) < n
    hwm = p.peak_rss_kib()
    assert hwm < RSS_LIMIT_KIB, "pooled VmHWM %d KiB while a slow reader fetched 512 MiB" % hwm


def test_quarter_gib_upload_streams_with_flat_memory(origin, pooled):
    o = origin()
    p = pooled()
    n = 256 * MiB
    block = memoryview(b"u" * MiB)
    with RawClient(p.port, timeout=60) as c:
        c.send(request_bytes("POST", o.url("/echo?discard=1"), o.authority,
                             [("Content-Length", str(n))]))
        for _ in range(n // MiB):
            c.send(block)
        r = c.read_response(timeout=60)
    assert r.status == 200
    assert r.header("X-Received-Bytes") == str(n)
    hwm = p.peak_rss_kib()
    assert hwm < RSS_LIMIT_KIB, "pooled VmHWM %d KiB after a 256 MiB upload" % hwm


def test_chunked_upload_streams_with_flat_memory(origin, pooled):
    o = origin()
    p = pooled()
    n = 64 * MiB
    chunk = b"%x\r\n" % (256 * 1024) + b"c" * (256 * 1024) + b"\r\n"
    with RawClient(p.port, timeout=60) as c:
        c.send(request_bytes("POST", o.url("/echo?discard=1"), o.authority,
                             [("Transfer-Encoding", "chunked")]))
        for _ in range(n // (256 * 1024)):
            c.send(chunk)
        c.send(b"0\r\n\r\n")
        r = c.read_response(timeout=60)
    assert r.status == 200 and r.header("X-Received-Bytes") == str(n)
    assert p.peak_rss_kib() < RSS_LIMIT_KIB


def test_origin_reset_mid_body_gives_a_truncated_response_and_logs_incomplete(origin, pooled):
    o = origin()
    p = pooled()
    n = 1000000
    cp, _ = run_curl(["-x", p.proxy_url, "-o", "/dev/null", "-w", "%{size_download}", "--max-time", "20",
                      o.url("/reset-after/%d" % n)], timeout=30)
    size = int(cp.stdout or b"0")
    # Never a clean, complete response: curl reports an error (18 partial file, 56 recv failure)
    assert cp.returncode != 0, "client saw a clean response of %d bytes" % size
    assert size < 2 * n
    recs = p.wait_access_log(1)
    assert recs and recs[0]["error"] == "http_response_incomplete", recs


def test_origin_reset_mid_body_closes_the_keepalive_client_connection(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port, timeout=10) as c:
        c.send(request_bytes("GET", o.url("/reset-after/100000"), o.authority))
        head = c.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        # pooled must close the client connection: the announced body can never be completed.
        body = c.read_to_close(timeout=10)
        assert c.eof
        assert len(body) < 200000
    assert p.alive(), "pooled died (exit %s)" % p.proc.returncode


def test_client_disconnect_mid_download_closes_the_origin_connection(origin, pooled):
    o = origin()
    p = pooled()
    s = connect(p.port)
    s.sendall(request_bytes("GET", o.url("/bytes/%d" % (1024 * MiB)), o.authority))
    got = 0
    while got < MiB:
        data = s.recv(65536)
        assert data
        got += len(data)
    assert o.stats()["connections_open"] == 1
    s.close()
    closed = wait_until(lambda: o.stats()["connections_open"] == 0, timeout=5)
    assert p.alive(), "pooled died (exit %s) when a client left mid-download" % p.proc.returncode
    assert closed, "origin connection still open 5 s after the client left: %r" % o.stats()
    assert_still_serves(p, o)


def test_client_disconnect_while_waiting_for_response_head_closes_the_origin_connection(origin, pooled):
    o = origin()
    p = pooled()
    s = connect(p.port)
    s.sendall(request_bytes("GET", o.url("/hang"), o.authority))
    assert wait_until(lambda: o.stats()["requests_in_flight"] == 1, timeout=5)
    s.close()
    assert wait_until(lambda: o.stats()["connections_open"] == 0, timeout=5), o.stats()
    assert p.alive(), "pooled died (exit %s) when a client left" % p.proc.returncode
    assert_still_serves(p, o)


def test_trickled_body_arrives_complete(origin, pooled):
    o = origin()
    p = pooled()
    start = time.monotonic()
    cp, _ = run_curl(["-x", p.proxy_url, "-o", "-", o.url("/trickle/10?interval_ms=50")], timeout=20)
    assert cp.returncode == 0, cp.stderr
    assert len(cp.stdout) == 10
    assert time.monotonic() - start >= 0.4


def test_a_slow_client_is_not_mistaken_for_a_silent_origin(origin, pooled):
    # upstream_read bounds how long the origin may go quiet. While pooled holds the origin
    # back because the client stopped reading, that silence is pooled's own doing.
    o = origin()
    p = pooled({"timeouts": {"upstream_read": "1s"}})
    n = 64 * MiB  # more than the kernel's socket buffers hold: pooled must pause the origin
    with RawClient(p.port, timeout=30) as c:
        c.send(request_bytes("GET", o.url("/bytes/%d" % n), o.authority))
        c.read_until(b"\r\n\r\n")
        c.read_exact(MiB)
        time.sleep(2.5)  # the client looks away for longer than upstream_read
        got = MiB
        while got < n:
            take = min(n - got, MiB)
            c.read_exact(take)
            got += take
    assert got == n
    assert p.wait_access_log(1)[-1]["error"] == ""


def test_a_client_that_stops_reading_is_dropped_after_client_idle(origin, pooled):
    o = origin()
    p = pooled({"timeouts": {"client_idle": "1s"}})
    with RawClient(p.port, timeout=30) as c:
        c.send(request_bytes("GET", o.url("/bytes/%d" % (64 * MiB)), o.authority))
        c.read_until(b"\r\n\r\n")
        c.read_exact(MiB)
        # Stop reading: pooled holds the origin back, then gives up on the client.
        assert wait_until(lambda: o.stats()["connections_open"] == 0, timeout=6), o.stats()
    entry = p.wait_access_log(1)[-1]
    assert entry["error"] == "client_write_timeout"
    assert_still_serves(p, o)
