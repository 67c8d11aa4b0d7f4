"""The command line: --version, --help, check-config, defaults, --listen, signals."""

import os
import re
import signal
import socket
import subprocess
import threading

import pytest
import requests

import kit
from kit import Pooled, pattern, wait_until


def run(args, timeout=20):
    cp = subprocess.run([kit.pooled_bin()] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        stdin=subprocess.DEVNULL, timeout=timeout)
    return cp, (cp.stdout + cp.stderr).decode("utf-8", "replace")


def test_version_prints_a_version_and_exits_0(pooled_bin):
    cp, out = run(["--version"])
    assert cp.returncode == 0, out
    assert re.search(r"\d+\.\d+\.\d+", out), out


def test_help_exits_0_and_mentions_config(pooled_bin):
    cp, out = run(["--help"])
    assert cp.returncode == 0, out
    assert "--config" in out and "check-config" in out, out


def test_check_config_accepts_the_shipped_example(pooled_bin):
    path = os.path.join(kit.REPO_ROOT, "config", "pooled.yaml")
    assert os.path.exists(path), "config/pooled.yaml (installed to /etc/pooled) does not exist"
    cp, out = run(["check-config", path])
    assert cp.returncode == 0, out


def test_check_config_accepts_a_valid_file(pooled_bin, tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("listeners:\n  - address: 127.0.0.1:0\npool:\n  max_connections_per_host: 4\n"
                 "  queue_timeout: 500ms\nlimits:\n  max_request_header_size: 8KiB\n")
    cp, out = run(["check-config", str(f)])
    assert cp.returncode == 0, out


def test_check_config_rejects_an_unknown_key_naming_file_line_and_column(pooled_bin, tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text("listeners:\n  - address: 127.0.0.1:0\npool:\n  max_conections_per_host: 4\n")
    cp, out = run(["check-config", str(f)])
    assert cp.returncode != 0, out
    assert "%s:4:3" % f in out, out
    assert "max_conections_per_host" in out, out


def test_check_config_rejects_a_bad_value_naming_its_position(pooled_bin, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("timeouts:\n  connect: soon\n")
    cp, out = run(["check-config", str(f)])
    assert cp.returncode != 0, out
    assert re.search(re.escape(str(f)) + r":2:\d+", out), out
    assert "connect" in out, out


def test_missing_config_file_is_an_error(pooled_bin, tmp_path):
    cp, out = run(["--config", str(tmp_path / "nope.yaml")], timeout=10)
    assert cp.returncode != 0, out
    assert "nope.yaml" in out, out


def port_is_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_without_config_listens_on_127_0_0_1_port_3128(pooled_bin):
    if not port_is_free(3128):
        pytest.skip("127.0.0.1:3128 is in use")
    p = Pooled(use_config=False)
    try:
        assert p.listeners[0][:2] == ("127.0.0.1", 3128), p.listeners
    finally:
        assert p.stop() == 0


def test_listen_option_overrides_the_default_listener(pooled_bin, origin):
    o = origin()
    p = Pooled(use_config=False, args=["--listen", "127.0.0.1:0"])
    try:
        assert p.port not in (0, 3128)
        r = requests.get(o.url("/bytes/3"), proxies={"http": p.proxy_url}, timeout=10)
        assert r.status_code == 200 and r.content == pattern(0, 3)
    finally:
        assert p.stop() == 0


def test_sigterm_exits_0(pooled):
    p = pooled()
    os.kill(p.pid, signal.SIGTERM)
    assert p.proc.wait(15) == 0


def test_sigterm_lets_in_flight_requests_finish_and_stops_accepting(origin, pooled):
    o = origin()
    p = pooled({"timeouts": {"drain": "5s"}})
    result = {}

    def slow():
        try:
            r = requests.get(o.url("/delay/1500"), proxies={"http": p.proxy_url}, timeout=10)
            result["status"], result["body"] = r.status_code, r.content
        except Exception as e:
            result["error"] = repr(e)

    t = threading.Thread(target=slow)
    t.start()
    assert wait_until(lambda: o.stats()["requests_in_flight"] == 1, timeout=5)
    os.kill(p.pid, signal.SIGTERM)

    def refused():
        try:
            socket.create_connection(("127.0.0.1", p.port), timeout=1).close()
            return False
        except OSError:
            return True

    assert wait_until(refused, timeout=1.0), "pooled still accepts connections while draining"
    t.join(15)
    assert result == {"status": 200, "body": b"delayed 1500"}, result
    assert p.proc.wait(10) == 0
