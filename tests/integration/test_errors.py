"""Unreachable origins, timeouts and slow clients: the right status, Proxy-Status token and
access-log error. Malformed and hostile requests are in test_hostile_requests.py."""

import socket
import threading
import time

from kit import RawClient, connect, free_port, proxy_status_error, request_bytes


def test_connection_refused_is_502_connection_refused(pooled):
    port = free_port()
    p = pooled()
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", "http://127.0.0.1:%d/x" % port, "127.0.0.1:%d" % port))
        r = c.read_response()
    assert r.status == 502
    assert proxy_status_error(r) == "connection_refused", r.headers
    rec = p.wait_access_log(1)[0]
    assert rec["error"] == "connection_refused" and rec["status"] == 502


def test_unresolvable_host_is_502_dns_error(pooled):
    p = pooled({"dns": {"timeout": "2s", "tries": 1}})
    with RawClient(p.port, timeout=15) as c:
        c.send(request_bytes("GET", "http://no-such-host.invalid/x", "no-such-host.invalid"))
        r = c.read_response()
    assert r.status == 502
    assert proxy_status_error(r) == "dns_error", r.headers


def test_origin_that_never_answers_gives_504_after_upstream_first_byte(origin, pooled):
    o = origin()
    p = pooled({"timeouts": {"upstream_first_byte": "1s"}})
    start = time.monotonic()
    with RawClient(p.port, timeout=10) as c:
        c.send(request_bytes("GET", o.url("/hang"), o.authority))
        r = c.read_response()
    elapsed = time.monotonic() - start
    assert r.status == 504
    assert proxy_status_error(r) == "http_response_timeout", r.headers
    assert 0.9 <= elapsed < 3.0, elapsed
    # The hung origin connection is not returned to the pool.
    assert wait_for(lambda: o.stats()["connections_open"] == 0, 5), o.stats()


def test_origin_closing_before_response_head_is_502(pooled):
    # An "origin" that reads the request and closes without answering.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]

    def accept_and_close():
        try:
            while True:
                conn, _ = srv.accept()
                conn.recv(65536)
                conn.close()
        except OSError:
            pass

    threading.Thread(target=accept_and_close, daemon=True).start()
    p = pooled()
    try:
        with RawClient(p.port, timeout=10) as c:
            c.send(request_bytes("GET", "http://127.0.0.1:%d/x" % port, "127.0.0.1:%d" % port))
            r = c.read_response()
        assert r.status == 502
        assert proxy_status_error(r) in ("http_response_incomplete", "connection_terminated"), r.headers
    finally:
        srv.close()


def test_oversized_response_header_section_is_502(origin, pooled):
    o = origin()
    p = pooled({"limits": {"max_response_header_size": "16KiB"}})
    with RawClient(p.port, timeout=10) as c:
        c.send(request_bytes("GET", o.url("/large-headers/40000"), o.authority))
        r = c.read_response()
    assert r.status == 502
    assert proxy_status_error(r) == "http_response_header_section_size", r.headers


def test_slowloris_client_is_disconnected_after_request_header_timeout(origin, pooled):
    o = origin()
    p = pooled({"timeouts": {"request_header": "2s"}})
    s = connect(p.port)
    data = request_bytes("GET", o.url("/bytes/1"), o.authority)
    start = time.monotonic()
    closed_at = None
    answer = b""
    s.settimeout(0.5)
    try:
        for i in range(len(data)):
            if time.monotonic() - start > 8:
                break
            try:
                s.sendall(data[i:i + 1])
                got = s.recv(65536)  # waits up to 0.5 s: the slowloris pace
            except socket.timeout:
                continue
            except OSError:
                closed_at = time.monotonic()
                break
            # pooled answered (e.g. 408) or closed: drain to EOF.
            answer += got
            s.settimeout(2)
            try:
                while True:
                    more = s.recv(65536)
                    if not more:
                        break
                    answer += more
            except OSError:
                pass
            closed_at = time.monotonic()
            break
    finally:
        s.close()
    assert closed_at is not None, "pooled kept a slowloris connection open for 8 s"
    assert 1.5 <= closed_at - start < 4.5, closed_at - start
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert o.stats()["requests"] == 0


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()
