"""Self-test of the test origin (tests/support/origin.py), without pooled.

If these fail, every other integration test's verdict is suspect.
"""

import base64
import socket
import time

import requests

from kit import RawClient, pattern, run_curl, connect


def get(o, path, method="GET", body=None, headers=b""):
    c = RawClient(o.port)
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode(), path.encode(), o.authority.encode())
    if body is not None:
        head += b"Content-Length: %d\r\n" % len(body)
    c.send(head + headers + b"\r\n" + (body or b""))
    return c, c.read_response(method)


def test_prints_port_and_serves_bytes_with_content_length(origin):
    o = origin()
    c, r = get(o, "/bytes/1000")
    assert r.status == 200
    assert r.header("Content-Length") == "1000"
    assert r.body == pattern(0, 1000)
    c.close()


def test_keeps_connections_alive_by_default(origin):
    o = origin()
    c, r1 = get(o, "/bytes/10")
    c.send(b"GET /bytes/20 HTTP/1.1\r\nHost: x\r\n\r\n")
    r2 = c.read_response()
    assert (r1.status, len(r1.body), r2.status, len(r2.body)) == (200, 10, 200, 20)
    c.close()
    st = o.stats()
    assert st["connections_accepted"] == 1
    assert st["requests"] == 2
    assert st["requests_by_path"] == {"/bytes/10": 1, "/bytes/20": 1}


def test_serves_a_large_body_fast(origin):
    o = origin()
    n = 256 * 1024 * 1024
    s = connect(o.port)
    s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
    buf = bytearray(1024 * 1024)
    got = 0
    start = time.monotonic()
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    got = len(head.split(b"\r\n\r\n", 1)[1])
    while got < n:
        k = s.recv_into(buf)
        assert k > 0
        got += k
    elapsed = time.monotonic() - start
    s.close()
    assert got == n
    # >= 500 MB/s on an idle machine; the bound is loose for shared CI.
    assert n / elapsed > 100e6, "origin too slow: %.0f MB/s" % (n / elapsed / 1e6)


def test_chunked_response_is_chunk_framed(origin):
    o = origin()
    c, r = get(o, "/chunked/50000?chunk=7000")
    assert r.header("Transfer-Encoding") == "chunked"
    assert r.header("Content-Length") is None
    assert r.body == pattern(0, 50000)


def test_close_delimited_response_has_no_framing_and_closes(origin):
    o = origin()
    c = RawClient(o.port)
    c.send(b"GET /close-delimited/3000 HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()
    assert r.header("Content-Length") is None and r.header("Transfer-Encoding") is None
    assert r.body == pattern(0, 3000)
    assert c.eof


def test_reset_after_sends_half_the_announced_body_then_rst(origin):
    o = origin()
    s = connect(o.port)
    s.sendall(b"GET /reset-after/5000 HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    reset = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            reset = True
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 10000" in head
    assert len(body) == 5000
    assert reset, "expected a TCP RST"


def test_trickle_sends_one_byte_per_interval(origin):
    o = origin()
    start = time.monotonic()
    c, r = get(o, "/trickle/5?interval_ms=100")
    elapsed = time.monotonic() - start
    assert r.body == pattern(0, 5)
    assert elapsed >= 0.35


def test_delay_answers_after_the_delay(origin):
    o = origin()
    start = time.monotonic()
    c, r = get(o, "/delay/300")
    assert r.status == 200 and time.monotonic() - start >= 0.28


def test_hang_never_answers(origin):
    o = origin()
    s = connect(o.port)
    s.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(0.5)
    try:
        data = s.recv(100)
        assert False, "hang answered %r" % data
    except socket.timeout:
        pass
    assert o.stats()["requests_in_flight"] == 1
    s.close()


def test_status_204_and_304_have_no_body_others_do(origin):
    o = origin()
    c = RawClient(o.port)
    for code in (204, 304, 404, 500):
        c.send(b"GET /status/%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
        r = c.read_response()
        assert r.status == code
        if code in (204, 304):
            assert r.body == b"" and r.header("Content-Length") is None
        else:
            assert r.body
    # Framing intact after body-less responses.
    c.send(b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.read_response().body == pattern(0, 3)


def test_head_gets_headers_without_body(origin):
    o = origin()
    c, r = get(o, "/bytes/100", method="HEAD")
    assert r.header("Content-Length") == "100"
    c.send(b"GET /bytes/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.read_response().body == pattern(0, 2)


def test_headers_echoes_the_request_head_in_order_with_case(origin):
    o = origin()
    c = RawClient(o.port)
    c.send(b"GET /headers?a=1 HTTP/1.1\r\nHost: h\r\nX-Zeta: 1\r\nx-alpha: two\r\nX-MiXeD: 3\r\n\r\n")
    j = c.read_response().json()
    assert j["method"] == "GET" and j["target"] == "/headers?a=1" and j["version"] == "HTTP/1.1"
    assert j["headers"] == [["Host", "h"], ["X-Zeta", "1"], ["x-alpha", "two"], ["X-MiXeD", "3"]]


def test_echo_returns_content_length_and_chunked_bodies(origin):
    o = origin()
    c, r = get(o, "/echo", method="POST", body=b"hello world")
    assert r.body == b"hello world" and r.header("X-Received-Bytes") == "11"
    c.send(b"PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    r = c.read_response()
    assert r.body == b"hello world" and r.header("X-Received-Bytes") == "11"


def test_echo_discard_counts_without_echoing(origin):
    o = origin()
    c, r = get(o, "/echo?discard=1", method="POST", body=b"x" * 100000)
    assert r.header("X-Received-Bytes") == "100000" and r.body == b"100000"


def test_echo_answers_expect_100_continue(origin):
    o = origin()
    c = RawClient(o.port)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    interim = c.read_response(skip_interim=False)
    assert interim.status == 100
    c.send(b"abc")
    assert c.read_response().body == b"abc"


def test_keepalive_hint_and_option_send_keep_alive_timeout(origin):
    o = origin()
    c, r = get(o, "/keepalive-hint/7")
    assert r.header("Keep-Alive") == "timeout=7"
    o2 = origin("--keepalive-timeout-header", "3")
    c, r = get(o2, "/bytes/1")
    assert r.header("Keep-Alive") == "timeout=3"


def test_idle_close_closes_idle_keepalive_connections(origin):
    o = origin("--idle-close-ms", "200")
    c, r = get(o, "/bytes/1")
    start = time.monotonic()
    assert c.is_closed(timeout=3)
    assert 0.15 <= time.monotonic() - start < 2.5


def test_max_requests_per_conn_closes_after_n(origin):
    o = origin("--max-requests-per-conn", "2")
    c, r = get(o, "/bytes/1")
    assert r.header("Connection") is None
    c.send(b"GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()
    assert r.header("Connection") == "close"
    assert c.is_closed(timeout=3)


def test_ws_upgrade_then_raw_echo(origin):
    o = origin()
    c = RawClient(o.port)
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    r = c.read_response()
    assert r.status == 101
    c.send(b"\x16\x03\x01raw bytes")
    assert c.read_exact(12) == b"\x16\x03\x01raw bytes"


def test_raw_writes_the_given_bytes_then_more_later_and_keeps_or_closes_the_connection(origin):
    o = origin()
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    first, later = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\x00junk", b"\r\nmore"
    c = RawClient(o.port)
    start = time.monotonic()
    c.send(b"HEAD /raw?b=%s&then_ms=200&then=%s HTTP/1.1\r\nHost: x\r\n\r\n"
           % (b64(first).encode(), b64(later).encode()))
    assert c.read_exact(len(first)) == first  # exactly these bytes, even for HEAD
    assert c.read_exact(len(later)) == later
    assert time.monotonic() - start >= 0.2
    # The connection stays open and serves the next request as usual.
    c.send(b"GET /raw?b=%s&close=1 HTTP/1.1\r\nHost: x\r\n\r\n" % b64(b"bye").encode())
    assert c.read_to_close() == b"bye"
    c.close()
    st = o.stats()
    assert st["connections_accepted"] == 1 and st["requests_by_path"] == {"/raw": 2}, st


def test_control_plane_is_not_counted_and_reset_clears(origin):
    o = origin()
    for _ in range(3):
        o.stats()
    assert o.stats()["connections_accepted"] == 0
    assert o.stats()["requests"] == 0
    get(o, "/bytes/1")[0].close()
    log = o.log()
    assert [e["target"] for e in log] == ["/bytes/1"]
    assert log[0]["headers"][0] == ["Host", o.authority]
    o.reset()
    st = o.stats()
    assert st["requests"] == 0 and st["connections_accepted"] == 0 and o.log() == []


def test_connections_open_tracks_closes(origin):
    o = origin()
    c, _ = get(o, "/bytes/1")
    assert o.stats()["connections_open"] == 1
    c.close()
    deadline = time.monotonic() + 3
    while o.stats()["connections_open"] != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert o.stats()["connections_open"] == 0
    assert o.stats()["connections_peak"] == 1


def test_works_with_requests_and_curl(origin):
    o = origin()
    r = requests.get(o.url("/bytes/10"), timeout=5)
    assert r.content == pattern(0, 10)
    cp, _ = run_curl(["-o", "-", o.url("/chunked/100")])
    assert cp.returncode == 0 and cp.stdout == pattern(0, 100)
    j = requests.post(o.url("/echo"), data=b"abc", timeout=5)
    assert j.content == b"abc"
