"""Integration-test kit for pooled: process wrappers for the test origin and the
daemon, a tiny YAML emitter, raw-socket HTTP helpers and a raw TCP echo server.

Only the stdlib is used here. Every process is started by us and ended by its PID.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import http.client

SUPPORT_DIR = os.path.dirname(os.path.abspath(__file__))
ORIGIN_SCRIPT = os.path.join(SUPPORT_DIR, "origin.py")
REPO_ROOT = os.path.dirname(os.path.dirname(SUPPORT_DIR))
DEFAULT_POOLED_BIN = "/work/main/build/pooled"

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _die_with_parent():
    """preexec_fn: the child gets SIGTERM if the test process dies (no orphans on a CI kill)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def pooled_bin():
    return os.environ.get("POOLED_BIN") or DEFAULT_POOLED_BIN


def pattern(offset, n):
    """The bytes the test origin sends at body offset `offset` (ALPHABET[i % 64])."""
    start = offset % 64
    reps = (start + n) // 64 + 1
    return (ALPHABET * reps)[start:start + n]


def rss_limit_kib(normal_kib):
    """A memory bound for pooled; sanitizer builds (POOLED_SANITIZED=1) carry shadow
    memory and a quarantine, so there the bound only catches runaway growth."""
    return normal_kib * 16 if os.environ.get("POOLED_SANITIZED") else normal_kib


def free_port():
    """A port that was free a moment ago (bound then closed): connecting to it is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(predicate, timeout, interval=0.05):
    """Polls predicate until it is truthy or timeout elapses; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _stop_process(proc, timeout):
    """SIGTERM, wait; SIGKILL if needed. Returns (returncode, killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout), False
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
        return proc.returncode, True


# --------------------------------------------------------------------------------------
# YAML (just enough for pooled's config: dicts, lists, scalars)
# --------------------------------------------------------------------------------------

def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if s == "" or re.search(r"[:#\[\]{},&*!|>'\"%@`]|^\s|\s$|^[-?]", s) and not re.fullmatch(r"[\w.\-]+:\d+", s):
        return json.dumps(s)
    return s


def to_yaml(obj, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                out.append("%s%s: []" % (pad, k))
            elif isinstance(v, dict):
                out.append("%s%s: {}" % (pad, k))
            else:
                out.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                sub = to_yaml(item, indent + 1).split("\n")
                sub[0] = pad + "- " + sub[0].lstrip()
                out.extend(sub)
            elif isinstance(item, list):
                out.append("%s- %s" % (pad, json.dumps(item)))
            else:
                out.append("%s- %s" % (pad, _yaml_scalar(item)))
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def deep_merge(base, override):
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------
# The test origin
# --------------------------------------------------------------------------------------

class Origin:
    def __init__(self, *args, python=None, control_context=None):
        """control_context: an ssl.SSLContext for the control plane of a TLS origin."""
        self.args = [str(a) for a in args]
        self.control_context = control_context
        self.proc = subprocess.Popen(
            [python or sys.executable, ORIGIN_SCRIPT, "--port", "0"] + self.args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid
        line = self.proc.stdout.readline()  # blocks until PORT or exit
        m = re.match(r"PORT (\d+)", line or "")
        if not m:
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError("origin did not start: %r %s" % (line, err))
        self.port = int(m.group(1))
        self.host = "127.0.0.1"
        self.authority = "127.0.0.1:%d" % self.port
        # Drain stderr so a chatty traceback can never block the origin.
        self._stderr = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self._stderr.append(line)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _control(self, method, path):
        if self.control_context is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                               context=self.control_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, (method, path, resp.status)
            return json.loads(body)
        finally:
            conn.close()

    def stats(self):
        return self._control("GET", "/__stats")

    def log(self):
        return self._control("GET", "/__log")

    def reset(self):
        self._control("POST", "/__reset")

    def stderr_text(self):
        return "".join(self._stderr)

    def stop(self):
        return _stop_process(self.proc, 5)


# --------------------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------------------

LISTEN_RE = re.compile(r"listening on (\S+):(\d+)(?: route=(\S+))?")

BASE_CONFIG = {
    "listeners": [{"address": "127.0.0.1:0"}],
    "access_log": {"format": "json", "output": "stdout"},
    "log_level": "info",
}


class Pooled:
    """A running pooled. Reads stdout (access log) and stderr in background threads."""

    def __init__(self, config=None, tmpdir=None, args=(), expected_listeners=None,
                 start_timeout=10.0, config_text=None, use_config=True):
        self.bin = pooled_bin()
        if not os.path.exists(self.bin):
            raise RuntimeError("pooled binary not found at %s (set POOLED_BIN)" % self.bin)
        self.config = deep_merge(BASE_CONFIG, config or {})
        if os.environ.get("POOLED_TEST_IO_URING") == "0" and "io_uring" not in self.config.get("buffers", {}):
            # scripts/test's second pass: the write path without io_uring (one write(2) each)
            self.config = deep_merge(self.config, {"buffers": {"io_uring": False}})
        self.config_path = None
        cmd = [self.bin]
        if use_config:
            self.config_path = os.path.join(tmpdir or "/tmp", "pooled-%d-%d.yaml" % (os.getpid(), id(self)))
            with open(self.config_path, "w") as f:
                f.write(config_text if config_text is not None else to_yaml(self.config) + "\n")
            cmd += ["--config", self.config_path]
        cmd += list(args)
        self.cmd = cmd
        self._stdout_lines = []
        self._stderr_lines = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid
        self._threads = [threading.Thread(target=self._reader, args=(self.proc.stdout, self._stdout_lines), daemon=True),
                         threading.Thread(target=self._reader, args=(self.proc.stderr, self._stderr_lines), daemon=True)]
        for t in self._threads:
            t.start()
        if expected_listeners is None:
            expected_listeners = len(self.config.get("listeners", [])) if use_config and config_text is None else 1
        self.listeners = []  # (address, port, route)
        deadline = time.monotonic() + start_timeout
        with self._cond:
            while True:
                self.listeners = [(m.group(1), int(m.group(2)), m.group(3))
                                  for m in (LISTEN_RE.search(l) for l in self._stderr_lines) if m]
                if len(self.listeners) >= expected_listeners:
                    break
                if self.proc.poll() is not None and all(not t.is_alive() for t in self._threads):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.1))
        if len(self.listeners) < expected_listeners:
            text = self.stderr_text()
            self.stop(check=False)
            raise RuntimeError("pooled did not report %d listener(s) within %.0fs; rc=%s; cmd=%s\nstderr:\n%s"
                               % (expected_listeners, start_timeout, self.proc.returncode, cmd, text[-4000:]))
        self.ports = [p for _, p, _ in self.listeners]
        self.port = self.ports[0]
        self.proxy_url = "http://127.0.0.1:%d" % self.port
        self.stopped = False

    def _reader(self, stream, sink):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                sink.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    # ---- observation ------------------------------------------------------------
    def stdout_lines(self):
        with self._lock:
            return list(self._stdout_lines)

    def stderr_text(self):
        with self._lock:
            return "\n".join(self._stderr_lines)

    def access_log(self):
        records = []
        for line in self.stdout_lines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
        return records

    def wait_access_log(self, count, timeout=5.0, predicate=None):
        """Waits until at least `count` records (matching predicate) are logged; returns them."""
        def matching():
            recs = self.access_log()
            return [r for r in recs if predicate is None or predicate(r)]
        wait_until(lambda: len(matching()) >= count, timeout)
        return matching()

    def proc_status(self, field):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def peak_rss_kib(self):
        return self.proc_status("VmHWM")

    def rss_kib(self):
        return self.proc_status("VmRSS")

    def alive(self):
        return self.proc.poll() is None

    # ---- shutdown ---------------------------------------------------------------
    def drain_timeout(self):
        text = str(self.config.get("timeouts", {}).get("drain", "10s"))
        m = re.fullmatch(r"(\d+)(ms|s|m)?", text)
        if not m:
            return 10.0
        n, unit = int(m.group(1)), m.group(2) or "ms"
        return n / 1000.0 if unit == "ms" else n * (60 if unit == "m" else 1)

    def stop(self, check=True):
        """SIGTERM; returns the exit code. With check, raises unless it exits 0 in time."""
        if getattr(self, "stopped", False):
            return self.proc.returncode
        self.stopped = True
        rc, killed = _stop_process(self.proc, self.drain_timeout() + 5)
        for t in self._threads:
            t.join(2)
        if check:
            if killed:
                raise AssertionError("pooled did not exit within the drain timeout after SIGTERM; killed.\n"
                                     "stderr tail:\n" + self.stderr_text()[-3000:])
            if rc != 0:
                raise AssertionError("pooled exited with %s after SIGTERM (expected 0).\nstderr tail:\n%s"
                                     % (rc, self.stderr_text()[-3000:]))
        return rc


# --------------------------------------------------------------------------------------
# Raw sockets
# --------------------------------------------------------------------------------------

def connect(port, host="127.0.0.1", timeout=10.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_exchange(port, data, timeout=5.0, shutdown_write=False):
    """Sends exact bytes, reads until the peer closes or `timeout` of silence. Returns bytes."""
    s = connect(port, timeout=timeout)
    try:
        s.sendall(data)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        return recv_until_close(s, timeout)
    finally:
        s.close()


def recv_until_close(sock, timeout=5.0):
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # ordered [(name, value)]
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        vals = self.headers_all(name)
        return vals[0] if vals else default

    def headers_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %s %r body=%d bytes>" % (self.status, self.reason, self.headers, len(self.body))


class IncompleteResponse(Exception):
    def __init__(self, msg, partial=b""):
        super().__init__(msg)
        self.partial = partial


class RawClient:
    """A byte-level HTTP/1.x client over one socket, for pipelining and malformed input."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = connect(port, host, timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1024 * 1024)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, marker, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.buf:
            if not self._fill(deadline):
                raise IncompleteResponse("EOF before %r" % marker, bytes(self.buf))
        idx = self.buf.index(marker) + len(marker)
        out = bytes(self.buf[:idx])
        del self.buf[:idx]
        return out

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise IncompleteResponse("EOF after %d of %d bytes" % (len(self.buf), n), bytes(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_close(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def is_closed(self, timeout=2.0):
        """True if the peer closes (EOF/RST) within timeout with no further data pending."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
            return True
        except socket.timeout:
            return False

    def read_response(self, method="GET", timeout=None, skip_interim=True):
        """Reads one response. Bodies: none for HEAD/1xx/204/304, else CL, chunked or to close."""
        while True:
            raw_head = self.read_until(b"\r\n\r\n", timeout)
            lines = raw_head[:-4].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            version, status = parts[0], int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.append((k, v.strip()))
            if skip_interim and 100 <= status < 200 and status != 101:
                continue
            break
        resp = Response(version, status, reason, headers, b"", raw_head)
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304) or method == "CONNECT" and status == 200:
            return resp
        te = ",".join(resp.headers_all("transfer-encoding")).lower()
        if "chunked" in te:
            body = bytearray()
            while True:
                line = self.read_until(b"\r\n", timeout)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_until(b"\r\n", timeout) != b"\r\n":
                        pass
                    break
                body += self.read_exact(size, timeout)
                assert self.read_exact(2, timeout) == b"\r\n", "bad chunk terminator"
            resp.body = bytes(body)
        elif resp.header("content-length") is not None:
            resp.body = self.read_exact(int(resp.header("content-length")), timeout)
        else:
            resp.body = self.read_to_close(timeout)
        return resp


def parse_response_bytes(data, method="GET"):
    """Parses a single complete response from bytes (for raw_exchange output)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise IncompleteResponse("no complete head", data)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    headers = [(k, v.strip()) for k, _, v in (l.partition(":") for l in lines[1:])]
    return Response(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest, head)


def proxy_status_error(resp_or_headers):
    """The error token of a Proxy-Status header (``pooled; error=TOKEN; ...``), or None."""
    if hasattr(resp_or_headers, "headers_all"):
        values = resp_or_headers.headers_all("proxy-status")
    else:  # requests' CaseInsensitiveDict or a plain dict
        v = resp_or_headers.get("Proxy-Status") or resp_or_headers.get("proxy-status")
        values = [v] if v else []
    for v in values:
        m = re.search(r"error=([A-Za-z0-9_\-]+)", v)
        if m:
            return m.group(1)
    return None


# --------------------------------------------------------------------------------------
# A loopback server that hands each connection to handle(conn) on a thread of its own
# --------------------------------------------------------------------------------------

class LoopbackServer:
    """Subclasses define handle(conn, n), n counting accepted connections from 1; the
    connection is closed after it, and a peer that goes away mid-exchange (OSError,
    ssl.SSLError) ends only that connection. start() = listen() then serve(), for a test
    that works the listening socket (self.sock) before connections are served."""

    accepted = 0

    def listen(self, backlog=16):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        return self

    def serve(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def start(self):
        return self.listen().serve()

    def close(self):
        self.sock.close()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle_and_close, args=(conn, self.accepted),
                             daemon=True).start()

    def _handle_and_close(self, conn, n):
        import ssl  # SSLError derives from OSError; named for whoever reads this
        with conn:
            try:
                self.handle(conn, n)
            except (OSError, ssl.SSLError):
                pass


# --------------------------------------------------------------------------------------
# A raw TCP echo server (for opaque CONNECT tunnels)
# --------------------------------------------------------------------------------------

class EchoServer:
    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                with self.lock:
                    self.received += data
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            sock.close()

    def close(self):
        self.running = False
        try:
            self.listener.close()
        except OSError:
            pass


def run_curl(args, timeout=60):
    """Runs curl; returns CompletedProcess (stdout/stderr bytes) and wall time."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    start = time.monotonic()
    cp = subprocess.run(["curl", "-sS"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=timeout, env=env)
    return cp, time.monotonic() - start


def request_bytes(method, target, host, headers=(), body=None, version="HTTP/1.1"):
    """Serialises a request exactly: headers is an ordered list of (name, value)."""
    lines = ["%s %s %s" % (method, target, version), "Host: %s" % host] if host is not None \
        else ["%s %s %s" % (method, target, version)]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def proxy_request(pooled_port, origin, method, path, headers=(), body=None, timeout=10.0, version="HTTP/1.1"):
    """One absolute-form request through the proxy on a fresh connection; returns Response."""
    with RawClient(pooled_port, timeout=timeout) as c:
        c.send(request_bytes(method, origin.url(path), origin.authority, headers, body, version))
        return c.read_response(method, timeout)


# ---- the admin endpoint (enabled per test with with_admin())

ADMIN_RE = re.compile(r"admin listening on (\S+):(\d+)")


def admin_port(p):
    m = wait_until(lambda: ADMIN_RE.search(p.stderr_text()), 5)
    assert m, p.stderr_text()
    return int(m.group(2))


def admin_get(port, path, timeout=5):
    import requests  # only admin tests need it
    return requests.get("http://127.0.0.1:%d%s" % (port, path), timeout=timeout,
                        proxies={"http": None, "https": None})


def with_admin(extra=None):
    config = {"admin": {"enabled": True, "address": "127.0.0.1:0"}}
    config.update(extra or {})
    return config


def metric(text, name, labels=""):
    """The value of one sample, e.g. metric(text, 'pooled_requests_total', 'code="2xx"')."""
    want = name + ("{%s}" % labels if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None
