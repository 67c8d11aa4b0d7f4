"""pooled as a plain HTTP/1.1 forward proxy: real clients, framing, header hygiene."""

import os

import requests

from kit import (RawClient, parse_response_bytes, pattern, proxy_request, raw_exchange,
                 request_bytes, run_curl)

ACCESS_LOG_FIELDS = {
    "time", "client", "method", "scheme", "host", "port", "path", "route", "status", "bytes_in",
    "bytes_out", "total_ms", "pool_wait_ms", "dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "reused",
    "upstream_conn", "upstream_conn_requests", "retries", "error", "detail",
}


def test_hundred_naive_requests_share_at_most_two_origin_connections(origin, pooled, proxies):
    o = origin()
    p = pooled()
    for i in range(100):
        # A new requests.get per call: a new client connection to the proxy each time.
        r = requests.get(o.url("/bytes/%d" % (100 + i)), proxies=proxies(p), timeout=10)
        assert r.status_code == 200, (i, r.status_code, r.headers)
        assert r.content == pattern(0, 100 + i)
    st = o.stats()
    assert st["requests"] == 100
    assert st["connections_accepted"] <= 2, st

    records = p.wait_access_log(100)
    assert len(records) == 100, "access log has %d records" % len(records)
    reused = sum(1 for r in records if r["reused"] is True)
    assert reused >= 95, "only %d of 100 requests reused a pooled connection" % reused
    assert all(r["status"] == 200 and r["error"] == "" for r in records)


def test_access_log_records_carry_every_field(origin, pooled, proxies):
    o = origin()
    p = pooled()
    requests.get(o.url("/bytes/123?q=1"), proxies=proxies(p), timeout=10)
    requests.post(o.url("/echo"), data=b"x" * 77, proxies=proxies(p), timeout=10)
    first, second = p.wait_access_log(2)[:2]
    for rec in (first, second):
        missing = ACCESS_LOG_FIELDS - set(rec)
        assert not missing, "access log record lacks %s: %r" % (sorted(missing), rec)
    assert first["method"] == "GET" and first["scheme"] == "http"
    assert first["host"] == "127.0.0.1" and first["port"] == o.port
    assert first["path"] == "/bytes/123?q=1"
    assert first["status"] == 200 and first["bytes_out"] == 123
    assert first["reused"] is False and first["connect_ms"] is not None
    assert isinstance(first["total_ms"], (int, float)) and first["total_ms"] >= 0
    assert first["upstream_conn_requests"] == 1
    assert second["method"] == "POST" and second["bytes_in"] == 77 and second["bytes_out"] == 77
    assert second["reused"] is True and second["connect_ms"] is None
    assert second["upstream_conn"] == first["upstream_conn"]
    assert second["upstream_conn_requests"] == 2


def test_curl_get_through_proxy(origin, pooled):
    o = origin()
    p = pooled()
    cp, _ = run_curl(["-x", p.proxy_url, "-o", "-", o.url("/bytes/5000")])
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == pattern(0, 5000)


def test_curl_post_body_is_echoed(origin, pooled):
    o = origin()
    p = pooled()
    cp, _ = run_curl(["-x", p.proxy_url, "--data-binary", "hello pooled", o.url("/echo")])
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == b"hello pooled"


def test_curl_head_gets_no_body(origin, pooled):
    o = origin()
    p = pooled()
    cp, _ = run_curl(["-x", p.proxy_url, "-I", "--max-time", "10", o.url("/bytes/4096")])
    assert cp.returncode == 0, cp.stderr
    head = cp.stdout.decode("latin-1")
    assert head.startswith("HTTP/1.1 200")
    assert "content-length: 4096" in head.lower()


def test_curl_chunked_upload_is_echoed(origin, pooled, tmp_path):
    o = origin()
    p = pooled()
    data = os.urandom(300 * 1024)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    cp, _ = run_curl(["-x", p.proxy_url, "-H", "Transfer-Encoding: chunked", "--data-binary",
                      "@%s" % f, o.url("/echo"), "-D", str(tmp_path / "head")])
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == data
    assert "x-received-bytes: %d" % len(data) in (tmp_path / "head").read_text().lower()
    log = o.log()
    assert len(log) == 1 and log[0]["method"] == "POST"


def test_expect_100_continue_upload_is_not_delayed(origin, pooled, tmp_path):
    o = origin()
    p = pooled()
    data = os.urandom(1024 * 1024)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    # A 10 s expect timeout: if pooled swallows the 100 Continue, curl stalls for 10 s.
    cp, elapsed = run_curl(["-x", p.proxy_url, "-H", "Expect: 100-continue", "--expect100-timeout", "10",
                            "--data-binary", "@%s" % f, o.url("/echo")], timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == data
    assert elapsed < 5, "1 MiB Expect: 100-continue upload took %.1fs" % elapsed


def test_http10_client_gets_a_complete_reply_and_close(origin, pooled):
    o = origin()
    p = pooled()
    data = raw_exchange(p.port, b"GET %s HTTP/1.0\r\n\r\n" % o.url("/bytes/10").encode(), timeout=5)
    r = parse_response_bytes(data)
    assert r.version in ("HTTP/1.0", "HTTP/1.1")
    assert r.status == 200
    assert r.body == pattern(0, 10)  # exactly the body, and the proxy closed the connection


def test_http10_client_gets_chunked_origin_response_unchunked(origin, pooled):
    o = origin()
    p = pooled()
    data = raw_exchange(p.port, b"GET %s HTTP/1.0\r\nHost: %s\r\n\r\n"
                        % (o.url("/chunked/1000?chunk=100").encode(), o.authority.encode()), timeout=5)
    r = parse_response_bytes(data)
    assert r.status == 200
    assert "chunked" not in (r.header("Transfer-Encoding") or "").lower()
    assert r.body == pattern(0, 1000)


def test_hop_by_hop_headers_are_removed_and_via_added_order_and_case_kept(origin, pooled):
    o = origin()
    p = pooled()
    headers = [
        ("X-First", "1"),
        ("Connection", "keep-alive, X-Foo"),
        ("X-Foo", "must-not-pass"),
        ("x-lower-case", "lower"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("X-UPPER", "UPPER value"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
        ("X-Last", "z"),
    ]
    r = proxy_request(p.port, o, "GET", "/headers", headers)
    assert r.status == 200
    seen = r.json()["headers"]
    names = [k.lower() for k, _ in seen]
    for hop in ("x-foo", "keep-alive", "proxy-connection", "te", "proxy-authorization"):
        assert hop not in names, "%s reached the origin: %r" % (hop, seen)
    for k, v in seen:
        if k.lower() == "connection":
            assert "x-foo" not in v.lower(), seen
    vias = [v for k, v in seen if k.lower() == "via"]
    assert any("1.1 pooled" in v for v in vias), "no Via: 1.1 pooled in %r" % seen
    kept = [[k, v] for k, v in seen if k.lower() in ("x-first", "x-lower-case", "x-upper", "x-last")]
    assert kept == [["X-First", "1"], ["x-lower-case", "lower"], ["X-UPPER", "UPPER value"], ["X-Last", "z"]]
    assert seen[0][0].lower() == "host"


def test_origin_receives_origin_form_target(origin, pooled):
    o = origin()
    p = pooled()
    r = proxy_request(p.port, o, "GET", "/headers?a=1&b=2")
    j = r.json()
    assert j["target"] == "/headers?a=1&b=2"
    assert j["version"] == "HTTP/1.1"
    assert [v for k, v in j["headers"] if k.lower() == "host"] == [o.authority]


def test_chunked_and_close_delimited_origin_responses_arrive_complete(origin, pooled, proxies):
    o = origin()
    p = pooled()
    s = requests.Session()
    s.proxies = proxies(p)
    for path, n in (("/chunked/%d?chunk=3000", 1000000), ("/close-delimited/%d", 1000000),
                    ("/chunked/%d", 0), ("/close-delimited/%d", 0), ("/bytes/%d", 10)):
        r = s.get(o.url(path % n), timeout=10)
        assert r.status_code == 200
        assert len(r.content) == n, path
        assert r.content == pattern(0, n), path


def test_close_delimited_response_then_next_request_on_same_client_connection(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", o.url("/close-delimited/5000"), o.authority))
        r = c.read_response()
        assert r.body == pattern(0, 5000)
        if not c.eof:  # pooled re-framed it and kept the client connection: it must still work
            c.send(request_bytes("GET", o.url("/bytes/7"), o.authority))
            assert c.read_response().body == pattern(0, 7)


def test_204_304_and_head_have_no_body(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", o.url("/status/204"), o.authority))
        r = c.read_response()
        assert r.status == 204 and r.body == b""
        c.send(request_bytes("GET", o.url("/status/304"), o.authority))
        r = c.read_response()
        assert r.status == 304 and r.body == b""
        c.send(request_bytes("HEAD", o.url("/bytes/100"), o.authority))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.header("Content-Length") == "100"
        # If any body bytes had leaked, this response would not parse.
        c.send(request_bytes("GET", o.url("/bytes/5"), o.authority))
        r = c.read_response()
        assert r.status == 200 and r.body == pattern(0, 5)
        assert c.buf == b""


def test_error_statuses_from_origin_are_passed_through(origin, pooled, proxies):
    o = origin()
    p = pooled()
    for code in (404, 500, 503):
        r = requests.get(o.url("/status/%d" % code), proxies=proxies(p), timeout=10)
        assert r.status_code == code
        assert r.content == b"status %d\n" % code
        assert "Proxy-Status" not in r.headers or "error=" not in r.headers["Proxy-Status"]


def test_client_keepalive_connection_serves_many_requests(origin, pooled):
    o = origin()
    p = pooled()
    with RawClient(p.port) as c:
        for i in range(20):
            c.send(request_bytes("GET", o.url("/bytes/%d" % i), o.authority))
            assert c.read_response().body == pattern(0, i)
    assert o.stats()["connections_accepted"] == 1
