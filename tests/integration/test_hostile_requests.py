"""Hostile client input: smuggling framings, malformed heads, invalid methods and targets,
Host problems and oversized requests. Each is refused with the right status and Proxy-Status,
the connection is closed (its framing is in doubt), the access log says why, and the origin
receives nothing, or exactly the part that was valid.

One daemon and one origin serve the whole table (a fresh pooled per case would cost more than
the cases); the origin's log is cleared before each case.
"""

import socket
import threading
import time

import pytest
import requests

import kit
from kit import RawClient, proxy_status_error, wait_until

LIMITS = {"limits": {"max_request_header_size": "8KiB", "max_header_count": 50,
                     "max_uri_length": "2KiB", "max_request_body": "4KiB"}}
BODY_LIMIT = 4096
# How long a refused request gets to reach the origin anyway before we say it did not.
SETTLE = 0.05


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    o = kit.Origin()
    try:
        # Origin-form requests for api.local go to the origin too.
        config = dict(LIMITS, routes=[{"name": "api", "hosts": ["api.local"], "upstream": o.url("")}])
        p = kit.Pooled(config, tmpdir=str(tmp_path_factory.mktemp("hostile")))
    except Exception:
        o.stop()
        raise
    yield o, p
    try:
        assert p.stop(check=True) == 0
    finally:
        o.stop()


def req(o, method=b"POST", path=b"/echo", headers=b"", body=b"", version=b"HTTP/1.1",
        host=True, target=None):
    """Exact request bytes; absolute-form to the origin unless `target` is given."""
    t = target if target is not None else o.url(path.decode()).encode()
    h = b"Host: %s\r\n" % o.authority.encode() if host else b""
    return b"%s %s %s\r\n%s%s\r\n%s" % (method, t, version, h, headers, body)


def smuggled(o):
    """A complete request hidden where a body would be: must never reach the origin."""
    return b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (o.url("/smuggled").encode(), o.authority.encode())


def chunked(data):
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


TE = b"Transfer-Encoding: chunked\r\n"
HELLO = b"hello"


def post(headers, body=lambda o: chunked(HELLO) + smuggled(o), **kw):
    return lambda o: req(o, headers=headers, body=body(o), **kw)


def get(headers=b"", **kw):
    return lambda o: req(o, method=b"GET", path=b"/headers", headers=headers, **kw)


def body(b):
    return lambda o: b


# (id, status, request bytes from the origin). Smuggling bodies carry a complete second
# request: whichever reading of the framing a next hop might take, it must see nothing.
CASES = [
    # Content-Length and Transfer-Encoding fighting over the framing
    ("cl-then-te", 400, post(b"Content-Length: 5\r\n" + TE)),
    ("te-then-cl", 400, post(TE + b"Content-Length: 5\r\n")),
    ("te-then-cl-http10", 400, post(TE + b"Content-Length: 5\r\n", version=b"HTTP/1.0")),
    ("duplicate-differing-content-length", 400, post(b"Content-Length: 5\r\nContent-Length: 6\r\n",
                                                     lambda o: HELLO + b"!" + smuggled(o))),
    # RFC 9110 8.6 allows merging identical values; pooled refuses them (one rule, no merging).
    ("duplicate-identical-content-length", 400, post(b"Content-Length: 5\r\nContent-Length: 5\r\n",
                                                     lambda o: HELLO + smuggled(o))),
    ("content-length-list", 400, post(b"Content-Length: 5, 6\r\n", lambda o: HELLO + b"!")),
    ("content-length-list-identical", 400, post(b"Content-Length: 5, 5\r\n", body(HELLO))),
    ("content-length-negative", 400, post(b"Content-Length: -5\r\n", body(HELLO))),
    ("content-length-plus-sign", 400, post(b"Content-Length: +5\r\n", body(HELLO))),
    ("content-length-hex", 400, post(b"Content-Length: 0x5\r\n", body(HELLO))),
    ("content-length-empty", 400, post(b"Content-Length: \r\n", body(HELLO))),
    ("content-length-inner-space", 400, post(b"Content-Length: 1 0\r\n", body(HELLO))),
    ("content-length-over-2^64", 400, post(b"Content-Length: 18446744073709551616\r\n",
                                           lambda o: smuggled(o))),
    # Fits llhttp's uint64 but not an int64: once read as "no Content-Length", the body
    # went upstream as a request of its own.
    ("content-length-2^64-1", 400, post(b"Content-Length: 18446744073709551615\r\n",
                                        lambda o: smuggled(o))),
    ("content-length-2^63", 400, post(b"Content-Length: 9223372036854775808\r\n",
                                      lambda o: smuggled(o))),
    ("te-xchunked", 400, post(b"Transfer-Encoding: xchunked\r\n")),
    ("te-space-before-colon", 400, post(b"Transfer-Encoding : chunked\r\n")),
    ("te-chunked-then-identity", 400, post(b"Transfer-Encoding: chunked, identity\r\n")),
    ("te-identity-then-chunked", 400, post(b"Transfer-Encoding: identity, chunked\r\n")),
    ("te-gzip-then-chunked", 400, post(b"Transfer-Encoding: gzip, chunked\r\n")),
    ("te-chunked-twice", 400, post(TE + TE)),
    ("te-in-http10", 400, post(TE, version=b"HTTP/1.0")),
    ("te-obs-folded", 400, post(b"Transfer-Encoding: identity\r\n chunked\r\n")),
    # Line endings and folding
    ("obs-fold-continuation", 400, get(b"X-A: 1\r\n  folded\r\n")),
    ("bare-lf-line-endings", 400, lambda o: req(o, method=b"GET").replace(b"\r\n", b"\n")),
    ("bare-lf-ending-one-header", 400, get(b"X-A: 1\nX-B: 2\r\n")),
    ("bare-cr-in-header", 400, get(b"X-A: 1\rX-B: 2\r\n")),
    ("bare-cr-after-request-line", 400, lambda o: req(o, method=b"GET").replace(b"\r\n", b"\r", 1)),
    ("whitespace-before-first-header", 400, lambda o: req(o, method=b"GET").replace(b"\r\nHost", b"\r\n Host")),
    # Bytes that two parsers could read differently
    ("nul-in-header-value", 400, get(b"X-A: a\x00b\r\n")),
    ("soh-in-header-value", 400, get(b"X-A: a\x01b\r\n")),
    ("del-in-header-value", 400, get(b"X-A: a\x7fb\r\n")),
    ("nul-in-header-name", 400, get(b"X-\x00A: 1\r\n")),
    ("soh-in-header-name", 400, get(b"X-\x01A: 1\r\n")),
    ("del-in-header-name", 400, get(b"X-\x7fA: 1\r\n")),
    ("paren-in-header-name", 400, get(b"X(A): 1\r\n")),
    ("space-in-header-name", 400, get(b"X A: 1\r\n")),
    ("space-before-header-colon", 400, get(b"X-Bad : 1\r\n")),
    ("8-bit-byte-in-header-name", 400, get(b"X-\xc4: 1\r\n")),
    ("empty-header-name", 400, get(b": 1\r\n")),
    ("header-line-without-colon", 400, get(b"X-A\r\n")),
    # Chunked framing
    ("chunk-size-not-hex", 400, post(TE, lambda o: b"zz\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-overflow", 400, post(TE, lambda o: b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-with-junk", 400, post(TE, lambda o: b"5xyz\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-with-trailing-space", 400, post(TE, lambda o: b"5 \r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-negative", 400, post(TE, lambda o: b"-5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-0x-prefix", 400, post(TE, lambda o: b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-lines-bare-lf", 400, post(TE, lambda o: b"5\nhello\n0\n\n")),
    ("chunk-data-without-crlf", 400, post(TE, lambda o: b"5\r\nhello" + smuggled(o))),
    ("chunk-data-then-bare-lf", 400, post(TE, lambda o: b"5\r\nhello\n0\r\n\r\n")),
    ("chunk-extensions-over-16KiB", 413, post(TE, lambda o: b"5;x=" + b"a" * 17000 + b"\r\nhello\r\n0\r\n\r\n")),
    # Body limit (max_request_body 4KiB): refused on the declared size, before any byte
    ("content-length-over-max-request-body", 413, post(b"Content-Length: 4097\r\n", body(b"x" * 100))),
    ("content-length-10^15", 413, post(b"Content-Length: 1000000000000000\r\n", body(HELLO))),
    ("chunk-size-over-max-request-body", 413, post(TE, lambda o: b"ffffffffffffffff\r\nhello")),
    ("chunks-adding-up-over-max-request-body", 413,
     post(TE, lambda o: b"800\r\n" + b"a" * 2048 + b"\r\n801\r\n" + b"b" * 2049 + b"\r\n0\r\n\r\n")),
    # Methods: case-sensitive tokens; a token llhttp does not know is 501, a non-token 400
    ("lowercase-method", 501, lambda o: req(o, method=b"get")),
    ("unknown-method", 501, lambda o: req(o, method=b"FROB")),
    ("method-with-paren", 400, lambda o: req(o, method=b"G(ET")),
    ("method-with-del", 400, lambda o: req(o, method=b"G\x7fET")),
    ("empty-method", 400, lambda o: req(o, method=b"")),
    ("garbage-request-line", 400, lambda o: b"THIS IS NOT HTTP\r\n\r\n"),
    # Targets
    ("space-in-target", 400, lambda o: req(o, method=b"GET", target=o.url("/a b").encode())),
    ("asterisk-target-for-get", 400, lambda o: req(o, method=b"GET", target=b"*")),
    ("empty-target", 400, lambda o: req(o, method=b"GET", target=b"")),
    ("control-byte-in-target", 400, lambda o: req(o, method=b"GET", target=o.url("/a\x01").encode())),
    ("del-in-target", 400, lambda o: req(o, method=b"GET", target=o.url("/a\x7f").encode())),
    ("tab-in-target", 400, lambda o: req(o, method=b"GET", target=o.url("/a\tb").encode())),
    ("relative-target", 400, lambda o: req(o, method=b"GET", target=b"a/b")),
    ("ftp-scheme", 400, lambda o: req(o, method=b"GET", target=b"ftp://%s/x" % o.authority.encode())),
    ("absolute-form-without-host", 400, lambda o: req(o, method=b"GET", target=b"http:///x")),
    ("absolute-form-bad-port", 400, lambda o: req(o, method=b"GET", target=b"http://127.0.0.1:99999/")),
    # RFC 9110 4.2.4: senders must not send userinfo; refused, so credentials never travel on.
    ("absolute-form-with-userinfo", 400,
     lambda o: req(o, method=b"GET", target=b"http://user:secret@%s/headers" % o.authority.encode())),
    # Versions
    ("http-2.0", 400, lambda o: req(o, method=b"GET", version=b"HTTP/2.0")),
    ("http-1.2", 400, lambda o: req(o, method=b"GET", version=b"HTTP/1.2")),
    ("lowercase-version", 400, lambda o: req(o, method=b"GET", version=b"http/1.1")),
    # Host (RFC 9112 3.2)
    ("missing-host-origin-form", 400, lambda o: req(o, method=b"GET", target=b"/headers", host=False)),
    ("missing-host-absolute-form", 400, lambda o: req(o, method=b"GET", host=False)),
    ("two-host-headers", 400, get(b"Host: other.example\r\n")),
    ("two-identical-host-headers", 400,
     lambda o: req(o, method=b"GET", headers=b"Host: %s\r\n" % o.authority.encode())),
    ("invalid-host-value", 400, get(b"Host: a b\r\n", host=False)),
    # Sizes (max_request_header_size 8KiB, max_header_count 50, max_uri_length 2KiB)
    ("header-section-over-8KiB", 431, get(b"".join(b"X-%02d: %s\r\n" % (i, b"v" * 240) for i in range(40)))),
    ("one-header-line-over-8KiB", 431, get(b"X-Big: " + b"a" * 9000 + b"\r\n")),
    ("too-many-header-fields", 431, get(b"".join(b"X-%d: 1\r\n" % i for i in range(60)))),
    ("uri-over-2KiB", 414, lambda o: req(o, method=b"GET", target=o.url("/x?" + "q" * 3000).encode())),
]


@pytest.mark.parametrize("status,build", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_request_is_refused_logged_and_never_reaches_the_origin(stage, status, build):
    o, p = stage
    o.reset()
    logged = len(p.access_log())
    with RawClient(p.port, timeout=5) as c:
        c.send(build(o))
        r = c.read_response()
        assert r.status == status, r
        assert proxy_status_error(r) == "http_request_error", r.headers
        assert r.header("connection", "").lower() == "close", r.headers
        assert c.is_closed(timeout=3), "connection kept open after a request whose framing is in doubt"
    time.sleep(SETTLE)
    assert o.log() == [], "reached the origin: %r" % o.log()
    records = p.wait_access_log(logged + 1)
    assert len(records) == logged + 1, records[logged:]
    assert (records[-1]["status"], records[-1]["error"]) == (status, "http_request_error"), records[-1]


def test_cases_cover_the_hostile_input_list():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"


# ---- what passes is passed on exactly ---------------------------------------------------

@pytest.mark.parametrize("path", [
    "/a/../b", "/%2e%2e/%2e%2e/etc/passwd", "/%00", "/a%2Fb", "/a//b/./c", "/p?q=%26&r=..%2f",
    "/%ZZ", "/caf%C3%A9?x=%20y",
])
def test_dot_segments_and_percent_encodings_pass_through_unchanged(stage, path):
    o, p = stage
    o.reset()
    with RawClient(p.port) as c:
        c.send(req(o, method=b"GET", path=path.encode()))
        r = c.read_response()
        c.send(b"GET %s HTTP/1.1\r\nHost: api.local\r\n\r\n" % path.encode())  # origin-form
        r2 = c.read_response()
    assert r.status == 404 and r2.status == 404  # the origin's answers: pooled forwarded both
    assert [e["target"] for e in o.log()] == [path, path]


def test_a_fragment_is_dropped_never_forwarded(stage):
    o, p = stage
    o.reset()
    with RawClient(p.port) as c:
        c.send(req(o, method=b"GET", path=b"/headers?x=1#frag")
               + b"GET /headers#frag HTTP/1.1\r\nHost: api.local\r\n\r\n")
        first, second = c.read_response(), c.read_response()
    assert first.status == 200 and first.json()["target"] == "/headers?x=1"
    assert second.status == 200 and second.json()["target"] == "/headers"
    assert [e["target"] for e in o.log()] == ["/headers?x=1", "/headers"]


def test_leading_whitespace_in_transfer_encoding_is_ows_and_the_body_arrives_once(stage):
    o, p = stage
    o.reset()
    with RawClient(p.port) as c:
        c.send(req(o, headers=b"Transfer-Encoding:   chunked\r\n", body=chunked(HELLO)))
        r = c.read_response()
        assert r.status == 200 and r.body == HELLO
        assert r.header("x-received-bytes") == "5"
        assert not c.is_closed(timeout=0.2), "a valid request must keep the connection"
    (entry,) = o.log()
    names = [k.lower() for k, _ in entry["headers"]]
    assert names.count("transfer-encoding") == 1 and "content-length" not in names


def test_absolute_form_authority_wins_over_a_differing_host_header(stage):
    o, p = stage
    o.reset()
    with RawClient(p.port) as c:
        c.send(req(o, method=b"GET", path=b"/headers", host=False, headers=b"Host: evil.example\r\n"))
        r = c.read_response()
    assert r.status == 200
    hosts = [v for k, v in r.json()["headers"] if k.lower() == "host"]
    assert hosts == [o.authority]
    assert "evil.example" not in repr(o.log())


def test_valid_request_before_a_malformed_one_is_forwarded_alone(stage):
    o, p = stage
    o.reset()
    good = req(o, method=b"GET", path=b"/headers?n=1")
    bad = req(o, headers=b"Content-Length: 3\r\n" + TE, body=chunked(HELLO) + smuggled(o))
    with RawClient(p.port) as c:
        c.send(good + bad + req(o, method=b"GET", path=b"/headers?n=3"))
        first = c.read_response()
        second = c.read_response()
        assert c.is_closed(timeout=3)
    assert first.status == 200 and first.json()["target"] == "/headers?n=1"
    assert second.status == 400 and proxy_status_error(second) == "http_request_error"
    time.sleep(SETTLE)
    assert [e["target"] for e in o.log()] == ["/headers?n=1"]


# ---- the request-body limit ---------------------------------------------------------------

def test_body_at_the_limit_passes_whole(stage):
    o, p = stage
    o.reset()
    data = kit.pattern(0, BODY_LIMIT)
    with RawClient(p.port) as c:
        c.send(req(o, headers=b"Content-Length: %d\r\n" % BODY_LIMIT, body=data))
        r1 = c.read_response()
        c.send(req(o, headers=TE, body=b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                   % (1000, data[:1000], BODY_LIMIT - 1000, data[1000:])))
        r2 = c.read_response()
    assert (r1.status, r1.body) == (200, data)
    assert (r2.status, r2.body) == (200, data)


def test_body_over_the_limit_with_expect_continue_gets_413_and_no_100(stage):
    o, p = stage
    o.reset()
    with RawClient(p.port) as c:
        c.send(req(o, headers=b"Content-Length: 5000\r\nExpect: 100-continue\r\n"))
        r = c.read_response(skip_interim=False)
        assert r.status == 413 and proxy_status_error(r) == "http_request_error"
        assert c.is_closed(timeout=3)
    time.sleep(SETTLE)
    assert o.log() == []


class RecordingOrigin:
    """Accepts one connection and records every byte until the peer closes; never answers."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.authority = "127.0.0.1:%d" % self.port
        self.received = bytearray()
        self.closed_by_peer = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.settimeout(15)
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.received += data
            except OSError:
                pass
        self.closed_by_peer.set()

    def close(self):
        self.listener.close()


def test_chunked_body_growing_over_the_limit_after_forwarding_aborts_the_upstream(pooled):
    up = RecordingOrigin()
    p = pooled({"limits": {"max_request_body": "4KiB"}})
    try:
        head = b"POST http://%s/upload HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
            up.authority.encode(), up.authority.encode(), TE)
        first = b"%x\r\n%s\r\n" % (3000, b"a" * 3000)
        with RawClient(p.port) as c:
            c.send(head + first)
            assert wait_until(lambda: up.received.endswith(b"a" * 3000 + b"\r\n"), 5), bytes(up.received[:300])
            c.send(b"%x\r\n%s\r\n0\r\n\r\n" % (2000, b"b" * 2000))  # 5000 bytes > 4 KiB
            r = c.read_response()
            assert r.status == 413 and proxy_status_error(r) == "http_request_error"
            assert c.is_closed(timeout=3)
        # The upstream connection was closed, not pooled, and never saw the request end.
        assert up.closed_by_peer.wait(5), "the upstream connection was kept"
        assert up.received.split(b"\r\n\r\n", 1)[1] == first, bytes(up.received[-200:])
        rec = p.wait_access_log(1)[0]
        assert (rec["status"], rec["error"]) == (413, "http_request_error")
    finally:
        up.close()


# ---- afterwards ---------------------------------------------------------------------------

def test_daemon_still_serves_normally_after_the_hostile_list(stage):
    o, p = stage
    assert p.alive()
    proxies = {"http": p.proxy_url}
    r = requests.post(o.url("/echo"), data=b"still here", proxies=proxies, timeout=10)
    assert r.status_code == 200 and r.content == b"still here"
    r = requests.get(o.url("/bytes/1000"), proxies=proxies, timeout=10)
    assert r.status_code == 200 and r.content == kit.pattern(0, 1000)


def test_a_client_still_uploading_an_over_limit_body_reads_the_whole_413(stage):
    """A real client (requests) sending a 3 MiB body over a 4 KiB limit: pooled answers 413 on
    the declared size and closes; the client, cut off mid-send, still reads the whole answer,
    and nothing reaches the origin."""
    o, p = stage
    o.reset()
    body = b"x" * (3 << 20)
    for _ in range(5):
        r = requests.post(o.url("/echo"), data=body, timeout=10,
                          proxies={"http": "http://127.0.0.1:%d" % p.port})
        assert r.status_code == 413 and proxy_status_error(r.headers) == "http_request_error"
        assert r.headers.get("Connection", "").lower() == "close"
    time.sleep(SETTLE)
    assert o.log() == []
