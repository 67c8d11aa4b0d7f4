"""The admin endpoint: /healthz, /readyz, /metrics (Prometheus text format), /pools."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
import requests

import kit
from kit import admin_get, admin_port, metric, wait_until, with_admin



def test_admin_is_off_by_default(pooled):
    p = pooled()
    assert "admin listening" not in p.stderr_text()


def test_healthz_and_readyz_answer_200_while_serving(pooled):
    p = pooled(with_admin())
    port = admin_port(p)
    r = admin_get(port, "/healthz")
    assert r.status_code == 200 and r.text == "ok\n"
    r = admin_get(port, "/readyz")
    assert r.status_code == 200
    assert r.headers["Connection"] == "close"


def test_unknown_paths_are_404_and_other_methods_405(pooled):
    p = pooled(with_admin())
    port = admin_port(p)
    assert admin_get(port, "/nope").status_code == 404
    r = requests.post("http://127.0.0.1:%d/metrics" % port, data=b"x", timeout=5,
                      proxies={"http": None})
    assert r.status_code == 405


def test_malformed_admin_request_gets_400(pooled):
    p = pooled(with_admin())
    port = admin_port(p)
    data = kit.raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400"), data


def test_metrics_count_requests_connections_and_reuse(pooled, origin, proxies):
    o = origin()
    p = pooled(with_admin())
    port = admin_port(p)
    with requests.Session() as s:
        for _ in range(5):
            assert s.get(o.url("/bytes/100"), proxies=proxies(p), timeout=10).status_code == 200
        assert s.get(o.url("/status/404"), proxies=proxies(p), timeout=10).status_code == 404
    dead = kit.free_port()
    r = requests.get("http://127.0.0.1:%d/x" % dead, proxies=proxies(p), timeout=10)
    assert r.status_code == 502
    p.wait_access_log(7)
    text = admin_get(port, "/metrics").text
    assert metric(text, "pooled_requests_total", 'code="2xx"') == 5
    assert metric(text, "pooled_requests_total", 'code="4xx"') == 1
    assert metric(text, "pooled_requests_total", 'code="5xx"') == 1
    assert metric(text, "pooled_request_errors_total", 'error="connection_refused"') == 1
    assert metric(text, "pooled_response_body_bytes_total") >= 500
    assert metric(text, "pooled_request_duration_seconds_count") == 7
    assert metric(text, "pooled_upstream_connections_created_total") >= 2
    assert metric(text, "pooled_upstream_connections_reused_total") >= 4
    assert metric(text, "pooled_upstream_connections_closed_total",
                  'cause="connection_refused"') == 1
    assert metric(text, "pooled_upstream_connections", 'state="idle"') >= 1
    assert metric(text, "pooled_pool_connections",
                  'pool="http://127.0.0.1:%d",state="idle"' % o.port) >= 1
    assert metric(text, "pooled_client_connections_accepted_total") >= 2
    assert metric(text, "pooled_ready") == 1
    assert "text/plain; version=0.0.4" in admin_get(port, "/metrics").headers["Content-Type"]


def test_metrics_name_the_cause_of_origin_closes(pooled, origin, proxies):
    o = origin("--max-requests-per-conn", "1")
    p = pooled(with_admin())
    port = admin_port(p)
    for _ in range(3):
        assert requests.get(o.url("/bytes/1"), proxies=proxies(p), timeout=10).status_code == 200
    p.wait_access_log(3)
    text = admin_get(port, "/metrics").text
    assert metric(text, "pooled_upstream_connections_closed_total", 'cause="not_reusable"') == 3


def test_metrics_name_what_ended_a_busy_connection_not_a_generic_failure(pooled, origin, proxies):
    # An origin that resets mid-body, a client that goes away mid-response: each closed
    # upstream connection is counted under what happened, never as "request_failed".
    o = origin()
    p = pooled(with_admin())
    port = admin_port(p)
    with kit.RawClient(p.port) as truncated:
        truncated.send(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                       % (o.url("/reset-after/1000").encode(), o.port))
        data = truncated.read_to_close()
    assert b"Content-Length: 2000" in data and len(data.split(b"\r\n\r\n", 1)[1]) < 2000
    c = kit.connect(p.port)
    c.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
              % (o.url("/trickle/50?interval_ms=100").encode(), o.port))
    c.recv(1)  # the response has begun
    c.close()
    p.wait_access_log(2)
    closed = "pooled_upstream_connections_closed_total"
    assert wait_until(lambda: metric(admin_get(port, "/metrics").text, closed,
                                     'cause="client_disconnected"') == 1, 5)
    text = admin_get(port, "/metrics").text
    assert metric(text, closed, 'cause="http_response_incomplete"') == 1
    assert metric(text, closed, 'cause="request_failed"') is None


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) missing")
def test_metrics_pass_promtool_check(pooled, origin, proxies, tmp_path):
    o = origin()
    p = pooled(with_admin())
    port = admin_port(p)
    for _ in range(3):
        requests.get(o.url("/bytes/10"), proxies=proxies(p), timeout=10)
    requests.get("http://127.0.0.1:%d/" % kit.free_port(), proxies=proxies(p), timeout=10)
    p.wait_access_log(4)
    text = admin_get(port, "/metrics").content
    cp = subprocess.run(["promtool", "check", "metrics"], input=text, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=30)
    assert cp.returncode == 0, cp.stdout.decode() + "\n" + text.decode()


def test_pools_json_shows_live_pool_state(pooled, origin, proxies):
    o = origin("--keepalive-timeout-header", "5")
    p = pooled(with_admin())
    port = admin_port(p)
    with requests.Session() as s:
        assert s.get(o.url("/bytes/1"), proxies=proxies(p), timeout=10).status_code == 200
    p.wait_access_log(1)

    def pool():
        doc = admin_get(port, "/pools").json()
        return next((x for x in doc["pools"] if x["key"] == "http://127.0.0.1:%d" % o.port), None)

    entry = wait_until(lambda: (lambda e: e if e and e["idle"] == 1 else None)(pool()), 5)
    assert entry, admin_get(port, "/pools").text
    assert entry["active"] == 0 and entry["pending"] == 0 and entry["connecting"] == 0
    # Keep-Alive: timeout=5 minus the 1 s margin
    assert entry["learned_idle_timeout_ms"] == 4000
    assert entry["idle_timeout_ms"] == 4000


def test_readyz_is_503_while_draining(pooled, origin, proxies):
    o = origin()
    p = pooled(with_admin({"timeouts": {"drain": "5s"}}))
    port = admin_port(p)
    result = {}

    def slow():
        result["r"] = requests.get(o.url("/delay/1500"), proxies=proxies(p), timeout=10)

    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: o.stats()["requests_in_flight"] >= 1, 5)
    os.kill(p.pid, signal.SIGTERM)
    assert wait_until(lambda: "draining" in p.stderr_text(), 5)
    r = admin_get(port, "/readyz")
    assert r.status_code == 503 and "draining" in r.text
    assert admin_get(port, "/healthz").status_code == 200
    t.join(10)
    assert result["r"].status_code == 200
    assert p.proc.wait(10) == 0  # a second SIGTERM would exit at once: just wait


def test_admin_address_may_not_be_a_proxy_listener(tmp_path, pooled_bin):
    f = tmp_path / "clash.yaml"
    f.write_text("listeners:\n  - address: 127.0.0.1:3999\nadmin:\n  enabled: true\n"
                 "  address: 127.0.0.1:3999\n")
    cp = subprocess.run([pooled_bin, "check-config", str(f)], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=10)
    assert cp.returncode != 0
    assert b"admin.address" in cp.stdout and b":5:" in cp.stdout, cp.stdout


def test_healthcheck_subcommand_probes_the_admin_endpoint(pooled, pooled_bin):
    p = pooled(with_admin())
    port = admin_port(p)

    def probe(*args):
        return subprocess.run([pooled_bin, "healthcheck"] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=10)

    assert probe("--admin", "127.0.0.1:%d" % port).returncode == 0
    assert probe("--admin", "127.0.0.1:%d" % port, "--path", "/readyz").returncode == 0
    bad = probe("--admin", "127.0.0.1:%d" % port, "--path", "/missing")
    assert bad.returncode == 1 and b"404" in bad.stdout
    dead = probe("--admin", "127.0.0.1:%d" % kit.free_port())
    assert dead.returncode == 1 and b"unhealthy" in dead.stdout
