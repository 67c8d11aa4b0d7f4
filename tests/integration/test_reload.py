"""SIGHUP reload and SIGTERM drain: new requests use the new config, a bad config keeps
the running one, listeners are re-bound, and no request fails across reloads under load."""

import os
import re
import signal
import threading
import time

import requests

import kit
from kit import wait_until


def reload_config(p, config, expect="reload: configuration applied", count=None):
    """Rewrites p's config file, sends SIGHUP and waits for the outcome line."""
    text = kit.to_yaml(kit.deep_merge(kit.BASE_CONFIG, config)) + "\n"
    return reload_text(p, text, expect, count)


def reload_text(p, text, expect, count=None):
    before = p.stderr_text().count(expect) if count is None else count - 1
    with open(p.config_path, "w") as f:
        f.write(text)
    os.kill(p.pid, signal.SIGHUP)
    assert wait_until(lambda: p.stderr_text().count(expect) > before, 5), p.stderr_text()[-3000:]


def sidecar(upstream_port, listen="127.0.0.1:0"):
    return {"listeners": [{"address": listen, "route": "api"}],
            "routes": [{"name": "api", "hosts": ["api.local"],
                        "upstream": "http://127.0.0.1:%d" % upstream_port}]}


def get(port, path="/headers", timeout=10):
    return requests.get("http://127.0.0.1:%d%s" % (port, path), timeout=timeout,
                        proxies={"http": None})


def test_reload_sends_new_requests_to_the_new_route(pooled, origin):
    a, b = origin(), origin()
    p = pooled(sidecar(a.port))
    assert get(p.port).status_code == 200
    assert a.stats()["requests"] == 1
    # A port-0 listener keeps its socket (and its port) across reloads.
    reload_config(p, sidecar(b.port))
    assert get(p.port).status_code == 200
    assert b.stats()["requests"] == 1 and a.stats()["requests"] == 1


def test_a_removed_route_drains_its_idle_connections(pooled, origin):
    a, b = origin(), origin()
    p = pooled(sidecar(a.port))
    assert get(p.port).status_code == 200
    assert wait_until(lambda: a.stats()["connections_open"] == 1, 5)
    reload_config(p, sidecar(b.port))
    assert wait_until(lambda: a.stats()["connections_open"] == 0, 5), a.stats()


def test_a_bad_config_keeps_the_running_one_and_names_line_and_column(pooled, origin):
    o = origin()
    p = pooled(sidecar(o.port))
    text = "listeners:\n  - address: 127.0.0.1:0\npool:\n  max_conections_per_host: 4\n"
    reload_text(p, text, "reload failed")
    err = p.stderr_text()
    assert re.search(r"reload failed, keeping the running configuration: .*:4:3: "
                     r"pool.max_conections_per_host", err), err[-2000:]
    assert get(p.port).status_code == 200  # still the sidecar route
    reload_text(p, "listeners: [\n", "reload failed")
    assert get(p.port).status_code == 200
    assert p.alive()


def test_reload_rebinds_changed_listeners(pooled, origin):
    o = origin()
    p = pooled({"listeners": [{"address": "127.0.0.1:0"}]})
    old_port = p.port
    new_port = kit.free_port()
    reload_config(p, {"listeners": [{"address": "127.0.0.1:%d" % new_port}]})
    r = requests.get(o.url("/bytes/3"), proxies={"http": "http://127.0.0.1:%d" % new_port}, timeout=10)
    assert r.status_code == 200

    def refused():
        try:
            kit.connect(old_port, timeout=1).close()
            return False
        except OSError:
            return True
    assert wait_until(refused, 5), "the old listener still accepts"


def test_a_listener_that_cannot_bind_fails_the_reload_and_keeps_serving(pooled, origin):
    o = origin()
    p = pooled()
    busy = kit.EchoServer()  # holds a port
    try:
        reload_config(p, {"listeners": [{"address": "127.0.0.1:0"},
                                        {"address": "127.0.0.1:%d" % busy.port}]},
                      expect="reload failed")
    finally:
        busy.close()
    assert "address already in use" in p.stderr_text()
    r = requests.get(o.url("/bytes/3"), proxies={"http": p.proxy_url}, timeout=10)
    assert r.status_code == 200


def test_reload_applies_the_log_level(pooled):
    p = pooled({"log_level": "info"})
    dead = "http://127.0.0.1:%d/" % kit.free_port()
    requests.get(dead, proxies={"http": p.proxy_url}, timeout=10)  # a failed connect: debug line
    assert "debug connect to" not in p.stderr_text()
    reload_config(p, {"log_level": "debug"})
    requests.get(dead, proxies={"http": p.proxy_url}, timeout=10)
    assert wait_until(lambda: "debug connect to" in p.stderr_text(), 5), p.stderr_text()[-2000:]


def test_no_request_fails_across_three_reloads_under_load(pooled, origin):
    a, b = origin(), origin()
    p = pooled(sidecar(a.port))
    failures = []
    done = []
    stop = threading.Event()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.get("http://127.0.0.1:%d/bytes/64" % p.port, timeout=10,
                              proxies={"http": None})
                    if r.status_code != 200 or r.content != kit.pattern(0, 64):
                        failures.append((r.status_code, r.content[:100]))
                    done.append(1)
                except requests.RequestException as e:
                    failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(3):
            time.sleep(0.3)
            reload_config(p, sidecar(b.port if i % 2 == 0 else a.port), count=i + 1)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not failures, failures[:5]
    assert len(done) > 50
    assert a.stats()["requests"] > 0 and b.stats()["requests"] > 0


def hang(o, p):
    """A request that never gets its answer; the drain ends it one way or another."""
    try:
        requests.get(o.url("/hang"), proxies={"http": p.proxy_url}, timeout=10)
    except requests.RequestException:
        pass


def test_sigterm_waits_at_most_the_drain_timeout(pooled, origin):
    o = origin()
    p = pooled({"timeouts": {"drain": "500ms"}})
    t = threading.Thread(target=hang, args=(o, p), daemon=True)
    t.start()
    wait_until(lambda: o.stats()["requests_in_flight"] >= 1, 5)
    start = time.monotonic()
    os.kill(p.pid, signal.SIGTERM)
    assert p.proc.wait(5) == 0
    assert time.monotonic() - start < 3
    assert "drain timeout" in p.stderr_text()


def test_a_second_sigterm_exits_at_once(pooled, origin):
    o = origin()
    p = pooled({"timeouts": {"drain": "30s"}})
    t = threading.Thread(target=hang, args=(o, p), daemon=True)
    t.start()
    wait_until(lambda: o.stats()["requests_in_flight"] >= 1, 5)
    os.kill(p.pid, signal.SIGTERM)
    assert wait_until(lambda: "draining" in p.stderr_text(), 5)
    start = time.monotonic()
    os.kill(p.pid, signal.SIGTERM)
    rc = p.proc.wait(5)
    assert time.monotonic() - start < 2
    assert rc != 0  # cut short: not a clean drain
    p.stopped = True
