"""Responses from a malicious or broken origin.

Whatever the origin writes, the client gets either a well-framed response or a clear
failure: a 502 with a Proxy-Status error token when nothing was forwarded yet, a
truncated response on a closed client connection when the head already went out. The
access log records it. And the upstream connection that carried it is discarded, never
reused: its framing is in doubt, so bytes left on it must never become the answer to
another request.

One daemon and one origin serve the whole list (the daemon must keep working through
it), plus a bystander client on a second origin that must see no failure at all. Each
case:
  1. a warm-up request leaves exactly one idle connection to the origin;
  2. the hostile request is served on it (reused: the worst place for a bad answer);
  3. the client sees the expected outcome; the access log records it;
  4. the daemon closes that connection (the origin's connections_open drops to 0:
     the origin itself keeps it open, so only the daemon can have closed it);
  5. the next request is served correctly on a new origin connection.
"""

import base64
import os
import threading
import time

import pytest
import requests

import kit
from kit import (IncompleteResponse, RawClient, admin_get, admin_port, metric, pattern,
                 proxy_status_error, request_bytes, run_curl, wait_until, with_admin)

SLOW = 4 if os.environ.get("POOLED_SANITIZED") else 1

# Expected outcomes.
BAD_GATEWAY = "502"        # nothing forwarded: 502 + Proxy-Status, client connection usable
TRUNCATED = "truncated"    # head forwarded, body cut: client connection closed
FIRST_ONLY = "first-only"  # a well-formed response is forwarded; what follows it is dropped
FORWARDED = "forwarded"    # valid after all (1xx): forwarded, connection may be reused

PROTOCOL = {"http_protocol_error"}
HEAD_SIZE = {"http_response_header_section_size"}
CUT = {"http_response_incomplete", "connection_terminated"}

OK2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
EVIL = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"


def head(*lines, status=b"HTTP/1.1 200 OK"):
    return b"\r\n".join((status,) + lines) + b"\r\n\r\n"


def chunked(body):
    return head(b"Transfer-Encoding: chunked") + body


def cl(value, body=b"ok"):
    return head(b"Content-Length: " + value) + body


# (id, what the origin writes, expected outcome, Proxy-Status tokens, options)
# options: method (default GET), then (bytes written 150 ms later), close (FIN after),
# status and body (FIRST_ONLY/FORWARDED: what the client must get; status 200 unless
# given), interim (the 1xx statuses forwarded first)
CASES = [
    # --- framing headers
    ("cl-and-te", head(b"Content-Length: 5", b"Transfer-Encoding: chunked")
     + b"5\r\nhello\r\n0\r\n\r\n", BAD_GATEWAY, PROTOCOL, {}),
    ("te-and-cl", head(b"Transfer-Encoding: chunked", b"Content-Length: 5")
     + b"5\r\nhello\r\n0\r\n\r\n", BAD_GATEWAY, PROTOCOL, {}),
    ("duplicate-differing-content-length", head(b"Content-Length: 2", b"Content-Length: 4")
     + b"okok", BAD_GATEWAY, PROTOCOL, {}),
    ("content-length-list-differing", cl(b"2, 4", b"okok"), BAD_GATEWAY, PROTOCOL, {}),
    ("negative-content-length", cl(b"-1"), BAD_GATEWAY, PROTOCOL, {}),
    ("non-numeric-content-length", cl(b"abc"), BAD_GATEWAY, PROTOCOL, {}),
    ("hex-content-length", cl(b"0x2"), BAD_GATEWAY, PROTOCOL, {}),
    ("plus-signed-content-length", cl(b"+2"), BAD_GATEWAY, PROTOCOL, {}),
    ("content-length-with-inner-space", cl(b"1 1"), BAD_GATEWAY, PROTOCOL, {}),
    ("overflowing-content-length", cl(b"99999999999999999999999"), BAD_GATEWAY, PROTOCOL, {}),
    ("te-xchunked", head(b"Transfer-Encoding: xchunked") + b"2\r\nok\r\n0\r\n\r\n",
     BAD_GATEWAY, PROTOCOL, {}),
    ("te-chunked-identity", head(b"Transfer-Encoding: chunked, identity")
     + b"2\r\nok\r\n0\r\n\r\n", BAD_GATEWAY, PROTOCOL, {}),
    ("te-gzip-not-chunked", head(b"Transfer-Encoding: gzip") + b"ok", BAD_GATEWAY, PROTOCOL,
     {"close": True}),
    ("te-chunked-twice", head(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked")
     + b"2\r\nok\r\n0\r\n\r\n", BAD_GATEWAY, PROTOCOL, {}),
    # --- chunked bodies (the head is out before the body turns bad)
    # A bad first chunk in the read that carried the head: the head is still held (it
    # waits for body bytes), the client has seen nothing, so it gets a clean 502.
    ("bad-chunk-size", chunked(b"zz\r\nok\r\n0\r\n\r\n"), BAD_GATEWAY, CUT, {}),
    ("negative-chunk-size", chunked(b"-2\r\nok\r\n0\r\n\r\n"), BAD_GATEWAY, CUT, {}),
    ("chunk-size-overflow", chunked(b"fffffffffffffffff2\r\nok\r\n0\r\n\r\n"), BAD_GATEWAY, CUT, {}),
    ("control-byte-in-chunk-extension", chunked(b"2;a=\x01\r\nok\r\n0\r\n\r\n"), BAD_GATEWAY, CUT, {}),
    # Body bytes went out with the head before the error: a truncation.
    ("missing-crlf-after-chunk-data", chunked(b"2\r\nokXX0\r\n\r\n"), TRUNCATED, CUT, {}),
    ("nul-in-trailer-name", chunked(b"2\r\nok\r\n0\r\nX-T\x00: 1\r\n\r\n"), TRUNCATED, CUT, {}),
    ("chunked-cut-by-close", chunked(b"2\r\nok\r\n"), TRUNCATED, CUT, {"close": True}),
    # --- header syntax
    ("obs-fold", head(b"Content-Length: 2", b"X-A: 1", b"  folded") + b"ok",
     BAD_GATEWAY, PROTOCOL, {}),
    ("bare-lf-everywhere", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", BAD_GATEWAY, PROTOCOL, {}),
    ("bare-lf-ends-head", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok", BAD_GATEWAY, PROTOCOL, {}),
    ("bare-lf-between-headers", b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok",
     BAD_GATEWAY, PROTOCOL, {}),
    ("bare-cr-in-header", head(b"X-A: 1\rContent-Length: 2") + b"ok", BAD_GATEWAY, PROTOCOL, {}),
    ("nul-in-header-name", head(b"X-\x00A: 1", b"Content-Length: 2") + b"ok",
     BAD_GATEWAY, PROTOCOL, {}),
    ("nul-in-header-value", head(b"X-A: a\x00b", b"Content-Length: 2") + b"ok",
     BAD_GATEWAY, PROTOCOL, {}),
    ("control-byte-in-header-value", head(b"X-A: a\x01b", b"Content-Length: 2") + b"ok",
     BAD_GATEWAY, PROTOCOL, {}),
    ("del-in-header-value", head(b"X-A: a\x7fb", b"Content-Length: 2") + b"ok",
     BAD_GATEWAY, PROTOCOL, {}),
    ("space-before-colon", head(b"Content-Length : 2") + b"ok", BAD_GATEWAY, PROTOCOL, {}),
    ("header-line-without-colon", head(b"NoColonHere", b"Content-Length: 2") + b"ok",
     BAD_GATEWAY, PROTOCOL, {}),
    ("empty-header-name", head(b": nameless", b"Content-Length: 2") + b"ok",
     BAD_GATEWAY, PROTOCOL, {}),
    # --- status line
    ("nul-in-reason-phrase", cl(b"2").replace(b"200 OK", b"200 O\x00K"), BAD_GATEWAY, PROTOCOL, {}),
    ("control-byte-in-reason-phrase", cl(b"2").replace(b"200 OK", b"200 O\x01K"),
     BAD_GATEWAY, PROTOCOL, {}),
    ("status-99", cl(b"2").replace(b"200 OK", b"99 x"), BAD_GATEWAY, PROTOCOL, {}),
    ("status-600", cl(b"2").replace(b"200 OK", b"600 Beyond"), BAD_GATEWAY, PROTOCOL, {}),
    ("status-1000", cl(b"2").replace(b"200 OK", b"1000"), BAD_GATEWAY, PROTOCOL, {}),
    ("status-not-a-number", cl(b"2").replace(b"200 OK", b"2x0 OK"), BAD_GATEWAY, PROTOCOL, {}),
    ("http-2-status-line", cl(b"2").replace(b"HTTP/1.1 200 OK", b"HTTP/2 200"),
     BAD_GATEWAY, PROTOCOL, {}),
    ("http-2.0-status-line", cl(b"2").replace(b"HTTP/1.1", b"HTTP/2.0"), BAD_GATEWAY, PROTOCOL, {}),
    ("http-1.2-status-line", cl(b"2").replace(b"HTTP/1.1", b"HTTP/1.2"), BAD_GATEWAY, PROTOCOL, {}),
    ("icy-status-line", cl(b"2").replace(b"HTTP/1.1", b"ICY"), BAD_GATEWAY, PROTOCOL, {}),
    ("lowercase-http-name", cl(b"2").replace(b"HTTP/1.1", b"http/1.1"), BAD_GATEWAY, PROTOCOL, {}),
    ("binary-garbage", b"\x00\x01\x02\xff garbage \x16\x03\x01\r\n\r\n", BAD_GATEWAY, PROTOCOL, {}),
    ("http-0.9-body-only", b"<html>hello</html>\n", BAD_GATEWAY, PROTOCOL, {"close": True}),
    ("http-0.9-body-only-kept-open", b"<html>hello</html>\n", BAD_GATEWAY, PROTOCOL, {}),
    ("head-cut-by-close", b"HTTP/1.1 200 OK\r\nContent-Len", BAD_GATEWAY, CUT, {"close": True}),
    # --- sizes (the daemon runs with max_response_header_size 8 KiB, 200 response fields)
    ("header-section-over-the-limit", head(b"Content-Length: 2", b"X-Big: " + b"b" * 9000) + b"ok",
     BAD_GATEWAY, HEAD_SIZE, {}),
    ("too-many-header-fields", head(b"Content-Length: 2", *[b"X-%d: 1" % i for i in range(250)])
     + b"ok", BAD_GATEWAY, HEAD_SIZE, {}),
    # --- more bytes than the response: never the answer to the next request
    ("more-body-than-content-length", OK2 + b"EXTRA", FIRST_ONLY, (), {"body": b"ok"}),
    ("bytes-after-the-last-chunk", chunked(b"2\r\nok\r\n0\r\n\r\n") + EVIL, FIRST_ONLY, (),
     {"body": b"ok"}),
    ("two-responses-in-one-write", OK2 + EVIL, FIRST_ONLY, (), {"body": b"ok"}),
    ("second-response-a-moment-later", OK2, FIRST_ONLY, (), {"body": b"ok", "then": EVIL}),
    ("unsolicited-crlf-after-response", OK2, FIRST_ONLY, (), {"body": b"ok", "then": b"\r\n"}),
    ("content-length-shorter-than-the-close", cl(b"2", b"hello"), FIRST_ONLY, (),
     {"body": b"he", "close": True}),
    ("content-length-longer-than-the-close", cl(b"10", b"hello"), TRUNCATED, CUT, {"close": True}),
    ("204-with-body", b"HTTP/1.1 204 No Content\r\n\r\n" + EVIL, FIRST_ONLY, (),
     {"status": 204, "body": b""}),
    ("204-with-content-length-and-body", head(b"Content-Length: 4", status=b"HTTP/1.1 204 No Content")
     + b"EVIL", FIRST_ONLY, (), {"status": 204, "body": b""}),
    ("304-with-body", head(b"Content-Length: 4", status=b"HTTP/1.1 304 Not Modified") + b"EVIL",
     FIRST_ONLY, (), {"status": 304, "body": b""}),
    ("head-answered-with-a-body", cl(b"4", b"EVIL"), FIRST_ONLY, (), {"method": "HEAD", "body": b""}),
    ("head-answered-with-a-chunked-body", chunked(b"4\r\nEVIL\r\n0\r\n\r\n"), FIRST_ONLY, (),
     {"method": "HEAD", "body": b""}),
    # --- interim responses
    ("100-continue-then-garbage", b"HTTP/1.1 100 Continue\r\n\r\nthis is not a status line\r\n\r\n",
     BAD_GATEWAY, PROTOCOL, {}),
    ("103-then-garbage", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\x00garbage\r\n\r\n",
     BAD_GATEWAY, PROTOCOL, {"interim": [103]}),
    ("101-without-upgrade-request",
     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\nEVIL",
     BAD_GATEWAY, PROTOCOL, {}),
    ("103-early-hints-then-response", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + OK2,
     FORWARDED, (), {"body": b"ok", "interim": [103]}),
    ("102-and-103-then-response", b"HTTP/1.1 102 Processing\r\n\r\n"
     b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + OK2,
     FORWARDED, (), {"body": b"ok", "interim": [102, 103]}),
    ("100-continue-unasked-then-response", b"HTTP/1.1 100 Continue\r\n\r\n" + OK2,
     FORWARDED, (), {"body": b"ok"}),
]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_path(case_id, data, then=None, close=False):
    path = "/raw?case=%s&b=%s" % (case_id, b64(data))
    if then is not None:
        path += "&then_ms=150&then=%s" % b64(then)
    if close:
        path += "&close=1"
    return path


class Bystander:
    """Requests to another origin through the same daemon, all along: none may fail."""

    def __init__(self, p, o):
        self.p, self.o = p, o
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + 300  # bounded even if the module is stuck
        i = 0
        c = None
        while not self.stop.is_set() and time.monotonic() < deadline and i < 5000:
            i += 1
            n = 100 + i % 500
            try:
                if c is None:
                    c = RawClient(self.p.port, timeout=10)
                path = "/bytes/%d" % n if i % 2 else "/chunked/%d?chunk=97" % n
                c.send(request_bytes("GET", self.o.url(path), self.o.authority))
                r = c.read_response()
                if r.status != 200 or r.body != pattern(0, n):
                    self.failures.append((path, r.status, r.body[:40]))
                else:
                    self.ok += 1
            except Exception as e:  # recorded, asserted by the last test
                self.failures.append((i, repr(e)))
                if c:
                    c.close()
                c = None
            self.stop.wait(0.02)
        if c:
            c.close()

    def finish(self):
        self.stop.set()
        self.thread.join(15)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    o = kit.Origin()
    other = kit.Origin()
    p = None
    try:
        p = kit.Pooled({
            "limits": {"max_response_header_size": "8KiB", "max_uri_length": "32KiB"},
            "timeouts": {"upstream_first_byte": "5s", "upstream_read": "5s"},
        }, tmpdir=str(tmp_path_factory.mktemp("hostile")))
        bystander = Bystander(p, other)
        yield o, p, bystander
        bystander.finish()
    finally:
        if p is not None:
            p.stop(check=True)
        o.stop()
        other.stop()


def entries(o, path_part):
    return [e for e in o.log() if path_part in e["target"]]


def get_ok(p, o, path, n, client=None):
    """A good request (on `client` if given); returns the origin connection that served it."""
    c = client or RawClient(p.port, timeout=10)
    try:
        c.send(request_bytes("GET", o.url(path), o.authority))
        r = c.read_response()
    finally:
        if client is None:
            c.close()
    assert r.status == 200 and r.body == pattern(0, n), (path, r)
    log = entries(o, path)
    assert log, "request %s never reached the origin" % path
    return log[-1]["conn"]


def peek_head(c):
    """The next response head in the client's buffer, not consumed (None at EOF)."""
    while b"\r\n\r\n" not in c.buf:
        if not c._fill(time.monotonic() + c.timeout):
            return None
    return bytes(c.buf[:c.buf.index(b"\r\n\r\n") + 4])


def read_interims(c):
    """Consumes the 1xx heads that come first; returns their status codes."""
    statuses = []
    while True:
        h = peek_head(c)
        if h is None or not h.startswith(b"HTTP/1.1 1"):
            return statuses
        statuses.append(int(h[9:12]))
        c.read_until(b"\r\n\r\n")


@pytest.mark.parametrize("case_id,data,outcome,tokens,opts", CASES, ids=[c[0] for c in CASES])
def test_hostile_response(env, case_id, data, outcome, tokens, opts):
    o, p, _ = env
    method = opts.get("method", "GET")
    warm = "/bytes/7?warm=%s" % case_id
    follow = "/bytes/9?after=%s" % case_id

    # 1. exactly one idle connection to the origin
    assert wait_until(lambda: o.stats()["connections_open"] <= 1, 5 * SLOW), o.stats()
    warm_conn = get_ok(p, o, warm, 7)

    # 2. the hostile answer, on that (reused) connection
    path = raw_path(case_id, data, opts.get("then"), opts.get("close", False))
    c = RawClient(p.port, timeout=10 * SLOW)
    try:
        c.send(request_bytes(method, o.url(path), o.authority))
        interims = read_interims(c)
        assert interims == opts.get("interim", []), interims
        if outcome == TRUNCATED:
            h = peek_head(c)
            assert h is not None and h.startswith(b"HTTP/1.1 200 "), h
            with pytest.raises(IncompleteResponse):
                c.read_response(method)  # framed by its head, it never completes
            client_usable = False
        else:
            r = c.read_response(method)
            if outcome == BAD_GATEWAY:
                assert r.status == 502, (r, r.body)
                assert proxy_status_error(r) in tokens, r.headers
            else:
                assert (r.status, r.body) == (opts.get("status", 200), opts["body"]), r
            client_usable = r.header("connection", "").lower() != "close"
        served = entries(o, "case=%s&" % case_id)
        assert len(served) == 1, served
        assert served[0]["conn"] == warm_conn, "the hostile request was not served on the idle connection"

        # 3. the access log
        recs = p.wait_access_log(1, timeout=5 * SLOW,
                                 predicate=lambda rec: ("case=%s&" % case_id) in rec["path"])
        assert recs, "no access-log record for %s" % case_id
        rec = recs[-1]
        if outcome == BAD_GATEWAY:
            assert rec["status"] == 502 and rec["error"] in tokens, rec
        elif outcome == TRUNCATED:
            assert rec["status"] == 200 and rec["error"] == "http_response_incomplete", rec
        else:
            assert rec["error"] in ("", None), rec

        # 4. the connection that carried it is closed by the daemon, never reused ...
        if outcome != FORWARDED:
            assert wait_until(lambda: o.stats()["connections_open"] == 0, 5 * SLOW), \
                "the daemon kept the connection that carried %s: %r" % (case_id, o.stats())

        # 5. ... and the next request gets its own answer on a new connection (on the same
        # client connection when the daemon kept it)
        if client_usable:
            next_conn = get_ok(p, o, follow, 9, client=c)
        else:
            assert c.is_closed(2 * SLOW), "client connection left open after a cut response"
            next_conn = get_ok(p, o, follow, 9)
        if outcome != FORWARDED:
            assert next_conn != warm_conn, "the next request reused the connection of %s" % case_id
        else:
            assert next_conn == warm_conn, "a well-framed interim response cost the connection"
    finally:
        c.close()


@pytest.mark.parametrize("case_id,data,close", [  # close: Content-Length framed, cut by a FIN
    ("cut-content-length", cl(b"10", b"hello"), True),
    ("cut-chunked", chunked(b"5\r\nhello\r\nzz\r\n"), False),
], ids=["content-length", "chunked"])
def test_a_response_cut_after_its_head_is_an_error_for_curl_and_requests(env, case_id, data, close):
    o, p, _ = env
    url = o.url(raw_path(case_id, data, close=close))
    cp, _ = run_curl(["-x", p.proxy_url, "-o", "/dev/null", url], timeout=20 * SLOW)
    assert cp.returncode in (18, 56), (cp.returncode, cp.stderr)  # partial file / recv failure
    def get():
        return requests.get(url + "&n=2", proxies={"http": p.proxy_url}, timeout=10 * SLOW)

    if close:
        # urllib3 1.x does not enforce Content-Length: the cut shows as a short body.
        r = get()
        assert len(r.content) < int(r.headers["Content-Length"]), r.headers
    else:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            get().content  # no last chunk
    assert wait_until(lambda: o.stats()["connections_open"] <= 1, 5 * SLOW), o.stats()


def test_unsolicited_bytes_on_an_idle_connection_are_counted_and_teach_no_idle_timeout(origin,
                                                                                       pooled):
    o = origin()
    p = pooled(with_admin())
    port = admin_port(p)
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", o.url(raw_path("idle-bytes", OK2, then=EVIL)), o.authority))
        assert c.read_response().body == b"ok"
        # The daemon closes it on the stray bytes (not on a timeout: 30 s by default).
        assert wait_until(lambda: o.stats()["connections_open"] == 0, 5 * SLOW), o.stats()
        get_ok(p, o, "/bytes/3", 3, client=c)
    text = admin_get(port, "/metrics").text
    assert metric(text, "pooled_upstream_connections_closed_total", 'cause="unsolicited_bytes"') == 1
    assert metric(text, "pooled_upstream_connections_closed_total", 'cause="origin_closed"') is None
    # Stray bytes say nothing about how long the origin keeps idle connections.
    pools = [x for x in admin_get(port, "/pools").json()["pools"] if str(o.port) in x["key"]]
    assert pools and pools[0]["learned_idle_timeout_ms"] is None, pools
    assert pools[0]["idle_timeout_ms"] == 30000, pools


def test_the_daemon_kept_serving_a_bystander_through_the_whole_list(env):
    o, p, bystander = env
    bystander.finish()
    assert bystander.failures == [], bystander.failures[:5]
    assert bystander.ok >= 20 and p.alive(), bystander.ok
    get_ok(p, o, "/bytes/5?final=1", 5)
