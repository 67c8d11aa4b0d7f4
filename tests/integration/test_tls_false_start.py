"""TLS False Start (RFC 7918): on a new TLS 1.2 connection pooled sends the request right
after its own Finished instead of waiting one more round trip for the origin's, when that
is safe (verified certificate, ECDHE, AEAD), and still trusts nothing it reads before the
origin's Finished has been checked.

The origin here completes its side of the handshake and then holds its last flight
(ChangeCipherSpec, Finished) back for a while, watching for application data: a client
that False Starts has its request in by then; one that waits for the Finished sends
nothing until the hold ends. No timing is asserted, only what arrived when."""

import socket
import ssl
import time

import pytest

import kit
from kit import RawClient, proxy_status_error, request_bytes
from tls_certs import make_test_pki

AEAD_SUITE = "ECDHE-ECDSA-AES128-GCM-SHA256"
CBC_SUITE = "ECDHE-ECDSA-AES128-SHA256"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(str(tmp_path_factory.mktemp("pki")))


class HoldingTlsOrigin(kit.LoopbackServer):
    """TLS 1.2 origin on loopback that withholds its Finished for `hold` seconds per
    connection. `seen_before_finished` lists, per connection, the plaintext that arrived
    while the Finished was held. finish=False: close instead of ever sending it."""

    def __init__(self, pki, ciphers, hold, finish=True, forget_sessions=False):
        def context():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(ciphers)
            ctx.load_cert_chain(pki["server_cert"], pki["server_key"])
            return ctx
        # forget_sessions: a context (ticket keys, session cache) per connection, like an
        # origin restarted between two connections: an offered session is refused.
        self.context = context if forget_sessions else (lambda ctx=context(): ctx)
        self.hold, self.finish = hold, finish
        self.seen_before_finished = []
        self.start()

    def handle(self, conn, n):
        conn.settimeout(10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context().wrap_bio(incoming, outgoing, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                conn.sendall(outgoing.read())
                data = conn.recv(65536)
                if not data:
                    return
                incoming.write(data)
        held = outgoing.read()  # our ChangeCipherSpec and Finished (and a session ticket)

        def pull(until):
            got = b""
            while True:
                try:
                    got += tls.read(65536)
                    continue
                except ssl.SSLWantReadError:
                    pass
                if b"\r\n\r\n" in got or time.monotonic() >= until:
                    return got
                conn.settimeout(max(0.01, until - time.monotonic()))
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    return got
                if not data:
                    return got
                incoming.write(data)

        early = pull(time.monotonic() + self.hold)
        self.seen_before_finished.append(early)
        if not self.finish:
            return
        conn.sendall(held)
        request = early if b"\r\n\r\n" in early else early + pull(time.monotonic() + 10)
        if b"\r\n\r\n" not in request:
            return
        tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.sendall(outgoing.read())


@pytest.fixture
def holding_origin(pki):
    started = []

    def start(ciphers=AEAD_SUITE, hold=5.0, finish=True, forget_sessions=False):
        o = HoldingTlsOrigin(pki, ciphers, hold, finish, forget_sessions)
        started.append(o)
        return o

    yield start
    for o in started:
        o.close()


def sidecar_to(pooled, pki, origin, **tls):
    config = {"listeners": [{"address": "127.0.0.1:0", "route": "tls"}],
              "routes": [{"name": "tls", "upstream": "https://localhost:%d" % origin.port,
                          "tls": dict({"ca_file": pki["ca"]}, **tls)}]}
    return pooled(config)


def get(p, path):
    with RawClient(p.port, timeout=15) as c:
        c.send(request_bytes("GET", path, "app.local"))
        return c.read_response(timeout=15)


def test_the_request_goes_out_before_the_origins_finished(pki, holding_origin, pooled):
    o = holding_origin(AEAD_SUITE)
    p = sidecar_to(pooled, pki, o)
    r = get(p, "/first")
    assert r.status == 200 and r.body == b"ok"
    assert len(o.seen_before_finished) == 1
    assert o.seen_before_finished[0].startswith(b"GET /first HTTP/1.1\r\n")
    rec = p.wait_access_log(1)[0]
    assert rec["status"] == 200 and rec["reused"] is False and rec["tls_resumed"] is False


def test_no_false_start_with_a_suite_that_is_not_aead(pki, holding_origin, pooled):
    # A CBC suite: an attacker who could weaken the handshake must not get the request
    # before the origin's Finished proves nobody did.
    o = holding_origin(CBC_SUITE, hold=1.0)
    p = sidecar_to(pooled, pki, o)
    r = get(p, "/cbc")
    assert r.status == 200 and r.body == b"ok"
    assert o.seen_before_finished == [b""]


def test_false_start_can_be_turned_off_per_upstream(pki, holding_origin, pooled):
    o = holding_origin(AEAD_SUITE, hold=1.0)
    p = sidecar_to(pooled, pki, o, false_start=False)
    r = get(p, "/patient")
    assert r.status == 200 and r.body == b"ok"
    assert o.seen_before_finished == [b""]


def test_an_origin_that_never_sends_its_finished_gives_a_502(pki, holding_origin, pooled):
    # The request has left (that is False Start's bet), but nothing the connection
    # carries is trusted without the origin's Finished: the client gets a clean error
    # naming the handshake, and the connection never reaches the pool.
    o = holding_origin(AEAD_SUITE, finish=False)
    p = sidecar_to(pooled, pki, o)
    r = get(p, "/unfinished")
    assert r.status == 502
    assert proxy_status_error(r) == "tls_protocol_error", r.headers_all("proxy-status")
    assert "during the TLS handshake" in r.header("proxy-status"), r.header("proxy-status")
    assert o.seen_before_finished[0].startswith(b"GET /unfinished ")


def test_a_refused_session_is_a_full_handshake_again_and_logged_as_one(pki, holding_origin, pooled):
    # The origin answers with Connection: close, so each request opens a connection, and
    # the second offers the first one's session, which this origin no longer knows.
    o = holding_origin(AEAD_SUITE, forget_sessions=True)
    p = sidecar_to(pooled, pki, o)
    for path in ("/one", "/two"):
        r = get(p, path)
        assert r.status == 200 and r.body == b"ok"
    log = p.wait_access_log(2)
    assert [r["tls_resumed"] for r in log] == [False, False]
    # A full handshake again, so False Started again.
    assert [seen.split(b" ")[1] for seen in o.seen_before_finished] == [b"/one", b"/two"]
