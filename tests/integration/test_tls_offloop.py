"""A TLS handshake's costly steps (certificate checks, key exchange) run on libuv's thread
pool, not on the event loop: a burst of new https connections must not stall the other
requests of the worker.

The witness: an origin whose only suite is DHE-RSA over the 8192-bit group of RFC 7919,
so that pooled's half of the key exchange costs it a long CPU stretch. The origin notes
when its flight up to ServerHelloDone went out and when pooled's ClientKeyExchange came
back. Once a thread of pooled other than its loop thread is seen spending CPU, a request
on a warm plain connection is answered before that ClientKeyExchange arrives. Done on
the loop, the handshake would gain no other thread CPU, and the plain request would
wait for the key exchange to go out. Order, not timings, is asserted (the margin is the
length of an 8192-bit key exchange against one loopback request)."""

import os
import ssl
import subprocess
import threading

import pytest

import kit
from kit import RawClient, request_bytes
from tls_certs import make_test_pki

DHE_SUITE = "DHE-RSA-AES128-GCM-SHA256"


@pytest.fixture(scope="module")
def dhe_pki(tmp_path_factory):
    """The test PKI with an RSA leaf for localhost (DHE-RSA needs an RSA key), and the
    ffdhe8192 group from openssl (named groups are instant; generating one is not)."""
    d = tmp_path_factory.mktemp("dhe")
    pki = make_test_pki(str(d), rsa_server=True)
    out = {"ca": pki["ca"], "cert": pki["rsa_server_cert"], "key": pki["rsa_server_key"],
           "dh": str(d / "dh.pem")}
    try:
        subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                        "group:ffdhe8192", "-out", out["dh"]], check=True, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip("openssl cannot write the ffdhe8192 group: %s" % e)
    return out


class SlowKeyExchangeOrigin(kit.LoopbackServer):
    """TLS 1.2, DHE-RSA only. flight_out: its ServerHelloDone flight was sent;
    key_exchange_in: the client's next flight (ClientKeyExchange) arrived."""

    def __init__(self, pki):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.set_ciphers(DHE_SUITE)
        self.ctx.load_cert_chain(pki["cert"], pki["key"])
        self.ctx.load_dh_params(pki["dh"])
        self.flight_out = threading.Event()
        self.key_exchange_in = threading.Event()
        self.start()

    def handle(self, conn, n):
        conn.settimeout(30)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(incoming, outgoing, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = outgoing.read()
                if out:
                    conn.sendall(out)
                    self.flight_out.set()
                data = conn.recv(65536)
                if not data:
                    return
                if self.flight_out.is_set():
                    self.key_exchange_in.set()
                incoming.write(data)
        conn.sendall(outgoing.read())
        request = b""
        while b"\r\n\r\n" not in request:
            try:
                request += tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            data = conn.recv(65536)
            if not data:
                return
            incoming.write(data)
        tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntls")
        conn.sendall(outgoing.read())


@pytest.fixture
def slow_origin(dhe_pki):
    o = SlowKeyExchangeOrigin(dhe_pki)
    yield o
    o.close()


def off_loop_cpu_ticks(pid):
    """CPU (clock ticks) of pooled's threads but its loop thread (the main one)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        if int(tid) == pid:
            continue
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def get(port, path, timeout=30):
    with RawClient(port, timeout=timeout) as c:
        c.send(request_bytes("GET", path, "app.local"))
        return c.read_response(timeout=timeout)


def start_pooled(pooled, plain, slow_origin, dhe_pki, connect="30s"):
    config = {"listeners": [{"address": "127.0.0.1:0", "route": "plain"},
                            {"address": "127.0.0.1:0", "route": "tls"}],
              "routes": [{"name": "plain", "upstream": plain.url("")},
                         {"name": "tls", "upstream": "https://localhost:%d" % slow_origin.port,
                          "tls": {"ca_file": dhe_pki["ca"]}}],
              "timeouts": {"connect": connect}}
    p = pooled(config)
    return p, {route: port for _, port, route in p.listeners}


def test_a_plain_request_is_answered_while_a_handshake_computes(origin, pooled, slow_origin,
                                                                dhe_pki):
    p, ports = start_pooled(pooled, origin(), slow_origin, dhe_pki)
    assert get(ports["plain"], "/status/200").status == 200  # the warm plain connection
    before = off_loop_cpu_ticks(p.pid)
    tls_result = {}
    tls_client = threading.Thread(
        target=lambda: tls_result.update(r=get(ports["tls"], "/slow", timeout=60)), daemon=True)
    tls_client.start()
    assert slow_origin.flight_out.wait(10)
    # pooled is now at the key exchange, and not on its loop thread.
    assert kit.wait_until(lambda: off_loop_cpu_ticks(p.pid) - before >= 5, 20), \
        "no thread of pooled but its loop thread spends CPU on the handshake"
    r = get(ports["plain"], "/status/200")
    assert r.status == 200
    assert not slow_origin.key_exchange_in.is_set(), \
        "the ClientKeyExchange went out before the plain request was answered"
    tls_client.join(60)
    assert tls_result["r"].status == 200 and tls_result["r"].body == b"tls"
    log = p.wait_access_log(3)
    tls_rec = [rec for rec in log if rec["route"] == "tls"]
    assert len(tls_rec) == 1 and tls_rec[0]["status"] == 200


def test_a_handshake_timing_out_while_it_computes_fails_cleanly(origin, pooled, slow_origin,
                                                                dhe_pki):
    # The connection goes (504) while its session is still on the thread pool: the job
    # finishes alone, sends nothing, and frees the session (ASan build: no report).
    p, ports = start_pooled(pooled, origin(), slow_origin, dhe_pki, connect="200ms")
    r = get(ports["tls"], "/too-slow")
    assert r.status == 504, r.headers_all("proxy-status")
    assert kit.proxy_status_error(r) == "connection_timeout"
    assert get(ports["plain"], "/status/200").status == 200
    assert kit.wait_until(lambda: slow_origin.flight_out.is_set(), 5)


def test_concurrent_handshakes_queue_and_may_time_out_waiting(origin, pooled, slow_origin,
                                                             dhe_pki):
    # Handshakes compute one at a time: three at once, each about as long as the
    # connect timeout, so some time out while computing or while still waiting their
    # turn (a cancelled job that never runs). Which ones depends on the machine; that
    # each gets an answer, the loop stays free and pooled exits cleanly (ASan) does not.
    p, ports = start_pooled(pooled, origin(), slow_origin, dhe_pki, connect="1500ms")
    results = []
    clients = [threading.Thread(target=lambda i=i: results.append(get(ports["tls"], "/q%d" % i)),
                                daemon=True) for i in range(3)]
    for c in clients:
        c.start()
    assert get(ports["plain"], "/status/200").status == 200
    for c in clients:
        c.join(60)
    assert len(results) == 3 and all(r.status in (200, 504) for r in results), \
        [(r.status, r.headers_all("proxy-status")) for r in results]
    assert get(ports["plain"], "/status/200").status == 200
