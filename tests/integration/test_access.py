"""Access control: who may use the proxy, where it may connect, and proxy authentication."""

import base64
import socket
import subprocess
import threading
import time

import pytest

from kit import admin_get, admin_port, metric, with_admin
from kit import RawClient, proxy_request, proxy_status_error, recv_until_close, request_bytes, parse_response_bytes


def from_address(port, source, data):
    """Sends `data` from a given loopback source address; returns the raw reply bytes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(data)
        return recv_until_close(s, 5)
    finally:
        s.close()


def test_a_client_outside_allow_clients_gets_403_and_is_closed(origin, pooled):
    o = origin()
    p = pooled({"access": {"allow_clients": ["127.0.0.1/32"]}})
    request = request_bytes("GET", o.url("/headers"), o.authority, [("Connection", "close")])
    denied = parse_response_bytes(from_address(p.port, "127.0.0.2", request))
    assert denied.status == 403
    assert denied.header("proxy-status") == 'pooled; error=http_request_denied; details="client not allowed"'
    allowed = parse_response_bytes(from_address(p.port, "127.0.0.1", request))
    assert allowed.status == 200
    assert len(o.log()) == 1


def test_by_default_any_loopback_client_is_allowed(origin, pooled):
    o = origin()
    p = pooled()
    request = request_bytes("GET", o.url("/headers"), o.authority, [("Connection", "close")])
    assert parse_response_bytes(from_address(p.port, "127.0.0.2", request)).status == 200


def test_a_non_loopback_listener_without_allow_clients_is_refused(pooled_bin, tmp_path):
    config = tmp_path / "open.yaml"
    config.write_text("listeners:\n  - address: 0.0.0.0:0\n")
    r = subprocess.run([pooled_bin, "check-config", str(config)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "open.yaml:2:14: listeners[0].address: listener 0.0.0.0:0 is not on loopback" in out


def test_a_denied_destination_gets_403_and_nothing_reaches_it(origin, pooled):
    o = origin()
    p = pooled({"access": {"deny_destinations": ["127.0.0.1/32"]}})
    r = proxy_request(p.port, o, "GET", "/")
    assert r.status == 403
    assert proxy_status_error(r) == "destination_ip_prohibited"
    assert o.log() == []
    rec = p.wait_access_log(1)[0]
    assert rec["status"] == 403


def test_a_name_is_checked_on_the_address_it_resolves_to(origin, pooled):
    o = origin()
    p = pooled({"access": {"deny_destinations": ["127.0.0.0/8", "::1/128"]}})
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", "http://localhost:%d/" % o.port, "localhost:%d" % o.port))
        r = c.read_response()
    assert r.status == 403
    assert proxy_status_error(r) == "destination_ip_prohibited"
    assert o.log() == []


def test_allow_destinations_makes_exceptions_to_the_deny_list(origin, pooled):
    o = origin()
    p = pooled({"access": {"deny_destinations": ["127.0.0.0/8"], "allow_destinations": ["127.0.0.1/32"]}})
    assert proxy_request(p.port, o, "GET", "/headers").status == 200


def get_via(p, host, port):
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", "http://%s:%d/headers" % (host, port), "%s:%d" % (host, port)))
        return c.read_response()


def test_a_denied_host_name_gets_403_before_any_lookup_and_allow_hosts_makes_exceptions(origin, pooled):
    o = origin()
    p = pooled({"access": {"deny_hosts": ["localhost", "*.invalid"], "allow_hosts": ["ok.invalid"]},
                "dns": {"timeout": "2s", "tries": 1}})
    for host in ("localhost", "LOCALHOST.", "metadata.internal.invalid"):
        r = get_via(p, host, o.port)
        assert r.status == 403, host
        assert proxy_status_error(r) == "http_request_denied"
        assert r.header("proxy-status").endswith('details="host %s is not allowed"' % host.rstrip(".").lower()), r.headers
    # The exception is let through to the lookup (which then fails: .invalid never resolves).
    assert proxy_status_error(get_via(p, "ok.invalid", o.port)) == "dns_error"
    assert o.log() == []
    assert get_via(p, "127.0.0.1", o.port).status == 200  # rules name hosts, not addresses


def test_allow_ports_limits_destination_ports_for_requests_and_connect(origin, pooled):
    o = origin()
    p = pooled({"access": {"allow_ports": [1]}, "connect": {"allowed_ports": [o.port]}})
    r = proxy_request(p.port, o, "GET", "/")
    assert r.status == 403
    assert r.header("proxy-status").endswith('details="port %d is not allowed"' % o.port)
    with RawClient(p.port) as c:
        c.send(request_bytes("CONNECT", o.authority, o.authority))
        assert c.read_response("CONNECT").status == 403
    assert o.log() == []
    ok = pooled({"access": {"allow_ports": [o.port]}})
    assert proxy_request(ok.port, o, "GET", "/headers").status == 200


def test_cloud_metadata_is_denied_by_default_without_a_connect(pooled):
    p = pooled({"timeouts": {"connect": "30s"}})
    with RawClient(p.port, timeout=5) as c:
        c.send(request_bytes("GET", "http://169.254.169.254/latest/meta-data/", "169.254.169.254"))
        r = c.read_response()
    assert r.status == 403
    assert proxy_status_error(r) == "destination_ip_prohibited"


def test_connect_to_a_denied_address_is_refused_before_the_tunnel_opens(pooled):
    p = pooled()
    with RawClient(p.port, timeout=5) as c:
        c.send(b"CONNECT 169.254.169.254:443 HTTP/1.1\r\nHost: 169.254.169.254:443\r\n\r\n")
        r = c.read_response("CONNECT")
    assert r.status == 403
    assert proxy_status_error(r) == "destination_ip_prohibited"


@pytest.fixture
def htpasswd(tmp_path):
    hashed = subprocess.run(["openssl", "passwd", "-6", "s3cret"], capture_output=True, text=True,
                            check=True).stdout.strip()
    path = tmp_path / "htpasswd"
    path.write_text("# test users\nalice:%s\n" % hashed)
    return str(path)


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def test_proxy_auth_answers_407_without_or_with_wrong_credentials(origin, pooled, htpasswd):
    o = origin()
    p = pooled({"access": {"proxy_auth": {"realm": "pooled", "credentials_file": htpasswd}}})
    for headers in ([], [("Proxy-Authorization", basic("alice", "wrong"))],
                    [("Proxy-Authorization", basic("mallory", "s3cret"))]):
        r = proxy_request(p.port, o, "GET", "/", headers=headers)
        assert r.status == 407
        assert r.header("proxy-authenticate") == 'Basic realm="pooled"'
        assert proxy_status_error(r) == "http_request_denied"
    assert o.log() == []


def test_proxy_auth_lets_valid_credentials_through_and_never_forwards_them(origin, pooled, htpasswd):
    o = origin()
    p = pooled({"access": {"proxy_auth": {"credentials_file": htpasswd}}})
    r = proxy_request(p.port, o, "GET", "/headers", headers=[("Proxy-Authorization", basic("alice", "s3cret"))])
    assert r.status == 200
    names = [k.lower() for k, _ in r.json()["headers"]]
    assert "proxy-authorization" not in names


def test_proxy_auth_covers_connect(echo_server, pooled, htpasswd):
    e = echo_server()
    p = pooled({"access": {"proxy_auth": {"credentials_file": htpasswd}},
                "connect": {"allowed_ports": [e.port]}})
    target = "127.0.0.1:%d" % e.port
    with RawClient(p.port) as c:
        c.send(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        assert c.read_response("CONNECT").status == 407
    with RawClient(p.port) as c:
        c.send(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                % (target, target, basic("alice", "s3cret"))).encode())
        assert c.read_response("CONNECT").status == 200


def test_a_slow_password_hash_does_not_stall_other_clients(origin, pooled, tmp_path):
    # SHA-crypt with 2,000,000 rounds takes about a second: hashed on the event loop it
    # would hold up every other connection until the wrong password was rejected.
    hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "saltsalt", "s3cret"],
                            capture_output=True, text=True, check=True).stdout.strip()
    slow = hashed.replace("$6$", "$6$rounds=2000000$", 1)
    slow_hash = subprocess.run(["/usr/bin/python3", "-c",
                                "import crypt,sys; print(crypt.crypt('s3cret', sys.argv[1]))", slow],
                               capture_output=True, text=True, check=True).stdout.strip()
    creds = tmp_path / "htpasswd"
    creds.write_text("alice:%s\n" % slow_hash)
    o = origin()
    p = pooled({"access": {"proxy_auth": {"credentials_file": str(creds)}}})
    good = [("Proxy-Authorization", basic("alice", "s3cret"))]
    assert proxy_request(p.port, o, "GET", "/bytes/1", headers=good, timeout=30).status == 200  # now cached
    finished = []
    def guess():
        r = proxy_request(p.port, o, "GET", "/bytes/1", headers=[("Proxy-Authorization", basic("alice", "guess"))],
                          timeout=30)
        finished.append(("guess", r.status))
    guesser = threading.Thread(target=guess)
    guesser.start()
    time.sleep(0.1)  # the guess is being hashed now
    r = proxy_request(p.port, o, "GET", "/bytes/1", headers=good, timeout=30)
    finished.append(("cached", r.status))
    guesser.join(30)
    assert finished == [("cached", 200), ("guess", 407)]


def test_denials_are_counted_by_reason_in_metrics(origin, pooled, htpasswd):
    o = origin()
    p = pooled(with_admin({"access": {"allow_clients": ["127.0.0.1/32"], "deny_destinations": ["127.0.0.3/32"],
                                      "proxy_auth": {"credentials_file": htpasswd}},
                           "connect": {"allowed_ports": [443]}}))
    auth = [("Proxy-Authorization", basic("alice", "s3cret"))]
    from_address(p.port, "127.0.0.2", request_bytes("GET", o.url("/"), o.authority))
    assert proxy_request(p.port, o, "GET", "/").status == 407
    with RawClient(p.port) as c:
        c.send(request_bytes("CONNECT", "127.0.0.1:25", "127.0.0.1:25", auth))
        assert c.read_response("CONNECT").status == 403
    with RawClient(p.port) as c:
        c.send(request_bytes("GET", "http://127.0.0.3:%d/" % o.port, "127.0.0.3:%d" % o.port, auth))
        assert c.read_response().status == 403
    text = admin_get(admin_port(p), "/metrics").text
    for reason in ("client_not_allowed", "proxy_auth", "connect_port", "destination"):
        assert metric(text, "pooled_denied_total", 'reason="%s"' % reason) == 1, (reason, text)


def test_a_bad_credentials_file_refuses_to_start(pooled_bin, tmp_path):
    creds = tmp_path / "htpasswd"
    creds.write_text("alice:plaintext\n")
    config = tmp_path / "auth.yaml"
    config.write_text("access:\n  proxy_auth:\n    credentials_file: %s\n" % creds)
    r = subprocess.run([pooled_bin, "check-config", str(config)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "access.proxy_auth.credentials_file: %s:1:" % creds in r.stdout + r.stderr


def test_a_reload_to_an_open_listener_is_refused_and_the_running_config_kept(origin, pooled):
    import os
    import signal

    from kit import wait_until

    o = origin()
    p = pooled()
    with open(p.config_path, "w") as f:
        f.write("listeners:\n  - address: 0.0.0.0:0\n")
    os.kill(p.pid, signal.SIGHUP)
    assert wait_until(lambda: "reload failed" in p.stderr_text(), 5), p.stderr_text()[-2000:]
    assert ":2:14: listeners[0].address: listener 0.0.0.0:0 is not on loopback" in p.stderr_text()
    assert proxy_request(p.port, o, "GET", "/headers").status == 200


def test_a_reload_applies_new_destination_rules(origin, pooled):
    import os
    import signal

    import kit
    from kit import wait_until

    o = origin()
    p = pooled()
    assert proxy_request(p.port, o, "GET", "/headers").status == 200
    with open(p.config_path, "w") as f:
        f.write(kit.to_yaml(kit.deep_merge(kit.BASE_CONFIG, {"access": {"deny_destinations": ["127.0.0.1/32"]}})) + "\n")
    os.kill(p.pid, signal.SIGHUP)
    assert wait_until(lambda: "reload: configuration applied" in p.stderr_text(), 5), p.stderr_text()[-2000:]
    r = proxy_request(p.port, o, "GET", "/headers")
    assert r.status == 403 and proxy_status_error(r) == "destination_ip_prohibited"
