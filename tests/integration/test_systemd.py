"""systemd integration without a running systemd: the notify protocol (the test listens
on the datagram socket itself), the watchdog, socket activation through
systemd-socket-activate, journal-friendly diagnostics, and the unit files."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

import kit
from kit import wait_until

SYSTEMD_DIR = os.path.join(kit.REPO_ROOT, "systemd")


class NotifyListener:
    """The systemd side of sd_notify: a unix datagram socket collecting messages."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(data.decode())

    def all(self):
        with self.lock:
            return list(self.messages)

    def wait_for(self, needle, count=1, timeout=5):
        return wait_until(lambda: len([m for m in self.all() if needle in m]) >= count, timeout)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    listeners = []

    def start(abstract=False):
        if abstract:
            name = "pooled-test-%d-%d" % (os.getpid(), len(listeners))
            n = NotifyListener("\0" + name)
            n.env = "@" + name
        else:
            path = str(tmp_path / ("notify-%d.sock" % len(listeners)))
            n = NotifyListener(path)
            n.env = path
        listeners.append(n)
        return n

    yield start
    for n in listeners:
        n.close()


def test_ready_reloading_and_stopping_are_notified(notify, pooled, monkeypatch):
    n = notify()
    monkeypatch.setenv("NOTIFY_SOCKET", n.env)
    p = pooled()
    assert n.wait_for("READY=1"), n.all()
    ready = [m for m in n.all() if "READY=1" in m][0]
    assert re.search(r"STATUS=serving: 1 listeners", ready), ready
    os.kill(p.pid, signal.SIGHUP)
    assert n.wait_for("RELOADING=1"), n.all()
    assert n.wait_for("READY=1", count=2), n.all()
    reloading = [m for m in n.all() if "RELOADING=1" in m][0]
    assert "MONOTONIC_USEC=" in reloading
    assert p.stop() == 0
    assert n.wait_for("STOPPING=1"), n.all()
    order = [m.split("\n")[0] for m in n.all() if "WATCHDOG" not in m]
    assert order == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], order


def test_abstract_notify_socket_is_supported(notify, pooled, monkeypatch):
    n = notify(abstract=True)
    monkeypatch.setenv("NOTIFY_SOCKET", n.env)
    pooled()
    assert n.wait_for("READY=1"), n.all()


def test_watchdog_is_pinged_at_half_the_interval(notify, pooled, monkeypatch):
    n = notify()
    monkeypatch.setenv("NOTIFY_SOCKET", n.env)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # 0.4 s -> a ping every 0.2 s
    pooled()
    start = time.monotonic()
    assert n.wait_for("WATCHDOG=1", count=5, timeout=5), n.all()
    assert time.monotonic() - start < 3


def test_watchdog_meant_for_another_pid_is_ignored(notify, pooled, monkeypatch):
    n = notify()
    monkeypatch.setenv("NOTIFY_SOCKET", n.env)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    pooled()
    assert n.wait_for("READY=1")
    time.sleep(0.5)
    assert not [m for m in n.all() if "WATCHDOG=1" in m]


def test_without_notify_socket_nothing_breaks(pooled, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    p = pooled()
    assert p.alive()


def test_journal_stream_drops_the_diagnostics_timestamp(pooled, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    p = pooled()
    first = p.stderr_text().splitlines()[0]
    assert first.startswith("info "), first
    monkeypatch.delenv("JOURNAL_STREAM")
    q = pooled()
    assert re.match(r"\d{4}-\d\d-\d\dT", q.stderr_text().splitlines()[0])


needs_activate = pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                                    reason="systemd-socket-activate missing")


def activate(tmp_path, ports, config_text):
    cfg = tmp_path / "activated.yaml"
    cfg.write_text(config_text)
    cmd = ["systemd-socket-activate"]
    for port in ports:
        cmd += ["-l", "127.0.0.1:%d" % port]
    cmd += [kit.pooled_bin(), "--config", str(cfg)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=kit._die_with_parent)


@needs_activate
def test_socket_activation_serves_on_the_passed_socket(tmp_path, origin):
    o = origin()
    port = kit.free_port()
    # The config names another address: the passed socket wins, in config order.
    proc = activate(tmp_path, [port], "listeners:\n  - address: 127.0.0.1:0\n")
    try:
        # systemd-socket-activate starts pooled on the first connection.
        def attempt():
            try:
                return requests.get(o.url("/bytes/5"), proxies={"http": "http://127.0.0.1:%d" % port},
                                    timeout=5)
            except requests.RequestException:
                return None
        r = wait_until(attempt, 10, interval=0.2)
        assert r is not None and r.status_code == 200 and r.content == kit.pattern(0, 5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    assert ("listening on 127.0.0.1:%d" % port) in err.decode(), err.decode()


@needs_activate
def test_more_passed_sockets_than_listeners_is_a_clear_error(tmp_path):
    a, b = kit.free_port(), kit.free_port()
    proc = activate(tmp_path, [a, b], "listeners:\n  - address: 127.0.0.1:0\n")
    try:
        def poke():  # systemd-socket-activate starts pooled on the first connection
            try:
                socket.create_connection(("127.0.0.1", a), timeout=2).close()
                return True
            except OSError:
                return False
        assert wait_until(poke, 10)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "LISTEN_FDS" in err.decode() and "2 sockets" in err.decode(), err.decode()


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze missing")


@needs_analyze
def test_unit_files_verify():
    for unit in ("pooled.service", "pooled.socket"):
        cp = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], cwd=SYSTEMD_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        text = cp.stdout.decode()
        # verify checks ExecStart= exists; the binary is installed to /usr/bin only by packages.
        problems = [l for l in text.splitlines()
                    if l.strip() and "/usr/bin/pooled" not in l and "Command " not in l]
        assert not problems, text


@needs_analyze
def test_service_hardening_exposure_is_at_most_2():
    cp = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                         os.path.join(SYSTEMD_DIR, "pooled.service")],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    text = cp.stdout.decode()
    m = re.search(r"exposure level for \S+: (\d+\.\d+)", text)
    assert m, text
    assert float(m.group(1)) <= 2.0, text


def test_service_unit_speaks_notify_and_reloads_with_sighup():
    text = open(os.path.join(SYSTEMD_DIR, "pooled.service")).read()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text, line
