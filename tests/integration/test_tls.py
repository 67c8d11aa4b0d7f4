"""TLS to upstreams: a real TLS origin on loopback (tests/support/origin.py --tls-cert),
certificates made at test time (tests/support/tls_certs.py). The origin counts full and
resumed handshakes itself, so reuse and resumption are measured where they happen."""

import http.client
import json
import os
import socket
import ssl
import subprocess
import time

import pytest
import requests

import kit
from kit import RawClient, proxy_status_error, request_bytes, rss_limit_kib, run_curl
from tls_certs import make_test_pki

MiB = 1024 * 1024
RSS_LIMIT_KIB = rss_limit_kib(32 * 1024)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def tls_origin(pki):
    """tls_origin(cert="server", *extra_args, client_ca=False) -> kit.Origin serving HTTPS."""
    started = []

    def start(cert="server", *args, client_ca=False):
        argv = ["--tls-cert", pki[cert + "_cert"], "--tls-key", pki[cert + "_key"]] + list(args)
        control = ssl.create_default_context(cafile=pki["ca"])
        control.check_hostname = False
        control.verify_mode = ssl.CERT_NONE
        if client_ca:
            argv += ["--tls-client-ca", pki["ca"]]
            control.load_cert_chain(pki["client_cert"], pki["client_key"])
        o = kit.Origin(*argv, control_context=control)
        started.append(o)
        return o

    yield start
    for o in started:
        o.stop()


def route_config(upstream, tls=None, **extra):
    route = {"name": "tls", "upstream": upstream}
    if tls:
        route["tls"] = tls
    config = {"listeners": [{"address": "127.0.0.1:0"},
                            {"address": "127.0.0.1:0", "route": "tls"}],
              "routes": [route]}
    config.update(extra)
    return config


def sidecar_get(p, path, timeout=10):
    with RawClient(p.ports[1], timeout=timeout) as c:
        c.send(request_bytes("GET", path, "app.local"))
        return c.read_response(timeout=timeout)


def test_100_naive_requests_use_two_tls_connections_and_one_full_handshake(pki, tls_origin, pooled):
    # The origin closes each connection after 50 requests: the second connection must
    # resume the first one's session instead of paying a full handshake again.
    o = tls_origin("server", "--max-requests-per-conn", "50")
    p = pooled(route_config("https://localhost:%d" % o.port, {"ca_file": pki["ca"]},
                            **kit.with_admin()))
    url = "http://127.0.0.1:%d/bytes/64" % p.ports[1]
    for _ in range(100):
        r = requests.get(url, timeout=10)  # a new client connection every time
        assert r.status_code == 200 and len(r.content) == 64
    stats = o.stats()
    assert stats["requests"] == 100
    assert stats["connections_accepted"] <= 2, stats
    assert stats["tls_full_handshakes"] <= 1, stats
    assert stats["tls_full_handshakes"] + stats["tls_resumed_handshakes"] == stats["connections_accepted"]
    assert stats["tls_resumed_handshakes"] >= 1, stats
    log = p.wait_access_log(100)
    fresh = [r for r in log if not r["reused"]]
    assert [r["tls_resumed"] for r in fresh] == [False, True]
    assert all(r["tls_ms"] == 0 and not r["tls_resumed"] for r in log if r["reused"])
    assert all(r["scheme"] == "https" and r["status"] == 200 for r in log)
    # What an operator sees without reading the log: one full handshake, one resumed.
    text = kit.admin_get(kit.admin_port(p), "/metrics").text
    assert kit.metric(text, "pooled_upstream_tls_handshakes_total", 'kind="full"') == 1
    assert kit.metric(text, "pooled_upstream_tls_handshakes_total", 'kind="resumed"') == 1
    assert kit.metric(text, "pooled_upstream_tls_handshake_seconds_count") == 2
    print("TLS handshake: full %.3f ms, resumed %.3f ms; origin: %s"
          % (fresh[0]["tls_ms"], fresh[1]["tls_ms"], stats))


def test_absolute_form_https_request_uses_the_global_ca_file(pki, tls_origin, pooled):
    o = tls_origin()
    p = pooled({"tls": {"ca_file": pki["ca"]}})
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", "https://localhost:%d/headers" % o.port, "localhost:%d" % o.port))
        r = c.read_response()
    assert r.status == 200, r
    assert r.json()["target"] == "/headers"
    assert ["Host", "localhost:%d" % o.port] in r.json()["headers"]
    rec = p.wait_access_log(1)[0]
    assert rec["scheme"] == "https" and rec["tls_ms"] > 0


def test_tls_origination_upgrades_plain_http_for_matching_hosts(pki, tls_origin, pooled):
    o = tls_origin()
    plain_port = kit.free_port()
    p = pooled({"tls_origination": [{"hosts": ["localhost"], "ports": {plain_port: o.port},
                                     "tls": {"ca_file": pki["ca"]}}]})
    proxies = {"http": p.proxy_url}
    r = requests.get("http://localhost:%d/bytes/5" % plain_port, proxies=proxies, timeout=10)
    assert r.status_code == 200 and r.content == kit.pattern(0, 5)
    assert o.stats()["tls_full_handshakes"] == 1
    rec = p.wait_access_log(1)[0]
    assert (rec["scheme"], rec["port"]) == ("https", o.port)


@pytest.mark.parametrize("cert,reason", [
    ("wrong_name", "host name mismatch"),
    ("unknown_ca", "unknown CA"),
    ("expired", "certificate expired"),
])
def test_a_certificate_that_fails_verification_is_a_502_and_nothing_is_sent(
        pki, tls_origin, pooled, cert, reason):
    o = tls_origin(cert)
    p = pooled(route_config("https://localhost:%d" % o.port, {"ca_file": pki["ca"]}))
    r = sidecar_get(p, "/bytes/5")
    assert r.status == 502
    assert proxy_status_error(r) == "tls_certificate_error"
    assert reason in r.header("Proxy-Status"), r.header("Proxy-Status")
    # No fallback: the request never reached the origin, on TLS or otherwise.
    assert o.stats()["requests"] == 0
    rec = p.wait_access_log(1)[0]
    assert rec["error"] == "tls_certificate_error" and reason in rec["detail"]


def test_insecure_skip_verify_connects_anyway_and_warns_at_start(pki, tls_origin, pooled):
    o = tls_origin("wrong_name")
    p = pooled(route_config("https://localhost:%d" % o.port, {"insecure_skip_verify": True}))
    assert "insecure_skip_verify" in p.stderr_text()
    assert sidecar_get(p, "/bytes/5").status == 200


def test_server_name_override_is_sent_and_verified(pki, tls_origin, pooled):
    o = tls_origin("wrong_name")
    p = pooled(route_config("https://127.0.0.1:%d" % o.port,
                            {"ca_file": pki["ca"], "server_name": "wrong.example"}))
    assert sidecar_get(p, "/bytes/5").status == 200
    assert o.stats()["tls_server_names"] == ["wrong.example"]


# Upstreams addressed by IP literal: no SNI (RFC 6066 3), and the certificate must list
# the address as an iPAddress SAN (RFC 9110 4.3.5); DNS names and the CN do not count.

def ways_in(way, o, pki, host):
    """A pooled reaching https://host:o.port one of three ways; returns (pooled, send)."""
    tls = {"ca_file": pki["ca"]}
    if way == "route":
        return route_config("https://%s:%d" % (host, o.port), tls), \
            lambda p: sidecar_get(p, "/bytes/5")
    if way == "absolute_form":
        def send(p):
            with RawClient(p.port) as c:
                c.send(request_bytes("GET", "https://%s:%d/bytes/5" % (host, o.port),
                                     "%s:%d" % (host, o.port)))
                return c.read_response()
        return {"tls": tls}, send
    plain_port = kit.free_port()

    def send(p):
        with RawClient(p.port) as c:
            c.send(request_bytes("GET", "http://%s:%d/bytes/5" % (host, plain_port),
                                 "%s:%d" % (host, plain_port)))
            return c.read_response()
    return {"tls_origination": [{"hosts": [host], "ports": {plain_port: o.port}, "tls": tls}]}, send


def origin_stats(o, host):
    """/__stats of a TLS origin listening on `host` (kit.Origin asks 127.0.0.1)."""
    conn = http.client.HTTPSConnection(host, o.port, timeout=10, context=o.control_context)
    try:
        conn.request("GET", "/__stats")
        resp = conn.getresponse()
        assert resp.status == 200
        return json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.parametrize("way", ["route", "absolute_form", "tls_origination"])
def test_an_ip_literal_upstream_is_verified_by_its_ip_san_and_gets_no_sni(pki, tls_origin, pooled, way):
    o = tls_origin("server")  # SANs: DNS localhost, IP 127.0.0.1
    config, send = ways_in(way, o, pki, "127.0.0.1")
    p = pooled(config)
    r = send(p)
    assert r.status == 200, (r, r.header("Proxy-Status"))
    assert r.body == kit.pattern(0, 5)
    stats = o.stats()
    assert stats["requests"] == 1 and stats["tls_full_handshakes"] == 1, stats
    assert stats["tls_server_names"] == [None]


def test_a_host_name_upstream_still_sends_its_name_as_sni(pki, tls_origin, pooled):
    o = tls_origin("server")
    p = pooled(route_config("https://localhost:%d" % o.port, {"ca_file": pki["ca"]}))
    assert sidecar_get(p, "/bytes/5").status == 200
    assert o.stats()["tls_server_names"] == ["localhost"]


def test_an_ip_server_name_override_is_verified_as_an_address(pki, tls_origin, pooled):
    o = tls_origin("server")
    p = pooled(route_config("https://localhost:%d" % o.port,
                            {"ca_file": pki["ca"], "server_name": "127.0.0.1"}))
    assert sidecar_get(p, "/bytes/5").status == 200
    assert o.stats()["tls_server_names"] == [None]


@pytest.mark.parametrize("way", ["route", "absolute_form", "tls_origination"])
def test_a_certificate_for_another_ip_is_a_502_and_nothing_is_sent(pki, tls_origin, pooled, way):
    # The certificate is valid for 127.0.0.1; the same origin is reached as 127.0.0.2.
    o = tls_origin("server", "--host", "127.0.0.2")
    config, send = ways_in(way, o, pki, "127.0.0.2")
    p = pooled(config)
    r = send(p)
    assert r.status == 502
    assert proxy_status_error(r) == "tls_certificate_error"
    assert "certificate has no IP SAN matching 127.0.0.2" in r.header("Proxy-Status"), \
        r.header("Proxy-Status")
    stats = origin_stats(o, "127.0.0.2")
    assert stats["requests"] == 0, stats  # (the origin counts its failed handshake later)
    rec = p.wait_access_log(1)[0]
    assert rec["error"] == "tls_certificate_error"
    assert rec["detail"] == "certificate has no IP SAN matching 127.0.0.2", rec


def test_a_certificate_with_only_dns_names_is_a_502_for_an_ip(pki, tls_origin, pooled):
    # DNS SAN localhost, CN "127.0.0.1": the CN is no fallback for an address.
    o = tls_origin("dns_only")
    p = pooled(route_config("https://127.0.0.1:%d" % o.port, {"ca_file": pki["ca"]}))
    r = sidecar_get(p, "/bytes/5")
    assert r.status == 502
    assert proxy_status_error(r) == "tls_certificate_error"
    assert "certificate has no IP SAN matching 127.0.0.1" in r.header("Proxy-Status")
    assert o.stats()["requests"] == 0
    # The same certificate is fine for the name it lists.
    p2 = pooled(route_config("https://localhost:%d" % o.port, {"ca_file": pki["ca"]}))
    assert sidecar_get(p2, "/bytes/5").status == 200


def test_chain_checks_still_apply_to_ip_literal_upstreams(pki, tls_origin, pooled):
    o = tls_origin("unknown_ca")  # lists IP 127.0.0.1, signed by a CA we do not trust
    p = pooled(route_config("https://127.0.0.1:%d" % o.port, {"ca_file": pki["ca"]}))
    r = sidecar_get(p, "/bytes/5")
    assert r.status == 502 and proxy_status_error(r) == "tls_certificate_error"
    assert "unknown CA for 127.0.0.1" in r.header("Proxy-Status"), r.header("Proxy-Status")
    assert o.stats()["requests"] == 0


def test_mtls_with_the_right_client_certificate(pki, tls_origin, pooled):
    o = tls_origin(client_ca=True)
    p = pooled(route_config("https://localhost:%d" % o.port,
                            {"ca_file": pki["ca"], "client_cert": pki["client_cert"],
                             "client_key": pki["client_key"]}))
    assert sidecar_get(p, "/bytes/5").status == 200
    assert o.stats()["tls_full_handshakes"] == 1


@pytest.mark.parametrize("client", [None, "other_client"])
def test_mtls_without_an_accepted_client_certificate_fails_clearly(pki, tls_origin, pooled, client):
    o = tls_origin(client_ca=True)
    tls = {"ca_file": pki["ca"]}
    if client:
        tls.update(client_cert=pki[client + "_cert"], client_key=pki[client + "_key"])
    p = pooled(route_config("https://localhost:%d" % o.port, tls))
    r = sidecar_get(p, "/bytes/5")
    assert r.status == 502
    assert proxy_status_error(r) in ("tls_alert_received", "tls_protocol_error"), r.header("Proxy-Status")
    assert "client certificate" in r.header("Proxy-Status")
    print(r.header("Proxy-Status"))
    assert o.stats()["requests"] == 0


def test_connections_with_different_tls_settings_are_never_shared(pki, tls_origin, pooled):
    o = tls_origin(client_ca=True)
    with_cert = {"ca_file": pki["ca"], "client_cert": pki["client_cert"], "client_key": pki["client_key"]}
    config = {"listeners": [{"address": "127.0.0.1:0"},
                            {"address": "127.0.0.1:0", "route": "a"},
                            {"address": "127.0.0.1:0", "route": "b"}],
              "routes": [{"name": "a", "upstream": "https://localhost:%d" % o.port, "tls": with_cert},
                         {"name": "b", "upstream": "https://localhost:%d" % o.port,
                          "tls": {"ca_file": pki["ca"]}}]}
    p = pooled(config)
    with RawClient(p.ports[1]) as c:
        c.send(request_bytes("GET", "/bytes/1", "a"))
        assert c.read_response().status == 200
    # Same host and port, no client certificate: must not ride route a's connection.
    with RawClient(p.ports[2]) as c:
        c.send(request_bytes("GET", "/bytes/1", "b"))
        assert c.read_response().status == 502
    assert o.stats()["requests"] == 1


def test_one_gib_download_over_tls_streams_with_flat_memory(pki, tls_origin, pooled):
    o = tls_origin()
    p = pooled(route_config("https://localhost:%d" % o.port, {"ca_file": pki["ca"]}))
    n = 1024 * MiB
    cp, elapsed = run_curl(["-o", "/dev/null", "-w", "%{size_download}", "--max-time", "240",
                            "http://127.0.0.1:%d/bytes/%d" % (p.ports[1], n)], timeout=260)
    assert cp.returncode == 0, cp.stderr
    assert int(cp.stdout) == n
    hwm = p.peak_rss_kib()
    assert hwm < RSS_LIMIT_KIB, "pooled VmHWM %d KiB after a 1 GiB TLS download" % hwm
    assert p.wait_access_log(1)[0]["bytes_out"] == n
    print("1 GiB over TLS in %.2fs (%.0f MB/s), VmHWM %d KiB" % (elapsed, n / elapsed / 1e6, hwm))


@pytest.mark.parametrize("close_notify", [False, True], ids=["fin", "close_notify"])
def test_an_origin_closing_idle_tls_connections_fails_no_request(pki, tls_origin, pooled, close_notify):
    args = ["--idle-close-ms", "300"] + (["--tls-close-notify"] if close_notify else [])
    o = tls_origin("server", *args)
    p = pooled(route_config("https://localhost:%d" % o.port, {"ca_file": pki["ca"]}))
    for _ in range(3):
        for _ in range(3):
            assert sidecar_get(p, "/bytes/5").status == 200
        time.sleep(0.6)  # the origin closes the idle connection meanwhile
    log = p.wait_access_log(9)
    assert all(r["status"] == 200 and r["error"] == "" for r in log)
    # Each close was seen while idle: the next request went straight to a new connection.
    assert sum(r["retries"] for r in log) == 0
    assert len({r["upstream_conn"] for r in log}) == 3
    assert sum(1 for r in log if r["tls_resumed"]) == 2


def test_connect_tunnel_carrying_tls_stays_opaque(pki, tls_origin, pooled):
    o = tls_origin()
    p = pooled({"connect": {"allowed_ports": [o.port]}})
    s = kit.connect(p.port)
    s.sendall(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (o.port, o.port))
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=pki["ca"])
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        # The client verified the origin's own certificate: pooled did not intercept.
        assert t.getpeercert()["subject"] == ((("commonName", "localhost"),),)
        t.sendall(b"GET /bytes/5 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = t.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(kit.pattern(0, 5))


def run_pooled(tmp_path, config):
    path = os.path.join(str(tmp_path), "bad.yaml")
    with open(path, "w") as f:
        f.write(kit.to_yaml(kit.deep_merge(kit.BASE_CONFIG, config)) + "\n")
    return subprocess.run([kit.pooled_bin(), "--config", path], capture_output=True, text=True,
                          timeout=10)


def test_an_unusable_client_key_stops_pooled_at_start_naming_the_key(pki, tmp_path):
    garbage = os.path.join(str(tmp_path), "garbage.key")
    with open(garbage, "w") as f:
        f.write("not a key\n")
    cp = run_pooled(tmp_path, route_config("https://localhost:1",
                                           {"client_cert": pki["client_cert"], "client_key": garbage}))
    assert cp.returncode == 1
    assert "routes[0].tls.client_key" in cp.stderr, cp.stderr


def test_a_missing_ca_file_is_a_config_error(tmp_path):
    cp = run_pooled(tmp_path, route_config("https://localhost:1", {"ca_file": "/nonexistent/ca.pem"}))
    assert cp.returncode == 1
    assert "routes[0].tls.ca_file" in cp.stderr and "/nonexistent/ca.pem" in cp.stderr, cp.stderr
