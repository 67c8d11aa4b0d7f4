"""Start and stop the servers of bench §2/§3: the origin nginx, pooled and the peers.

Every server gets its config from bench/peers/ (placeholders @PORT@, @ORIGIN_PORT@,
@SIDECAR_PORT@, @DIR@ filled in), its own directory under the run's temp dir, loopback
ports picked free at start, and is stopped by its PID (TERM, then KILL). Resource figures
are read from /proc for the server's whole process tree (nginx master + worker, etc.).
"""
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.request

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NOFILE = 20000  # 10,000 idle clients need it; the hard limit on this machine


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):  # not root: the soft limit up to the hard one
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))


def tree_pids(pid):
    """pid and all its descendants (nginx workers, squid helpers)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid):
    """utime + stime of the live process tree (all threads of each process)."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def status_kib(pid, key):
    """Sum of /proc/PID/status KEY (VmRSS, VmHWM) over the tree, KiB."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def open_file_bytes(pid):
    """Bytes in regular files the tree holds open for writing now: temp files, unlinked
    ones included (nginx unlinks its proxy_temp files right after creating them)."""
    total = 0
    for p in tree_pids(pid):
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{p}/fdinfo/{fd}") as f:
                    flags = int(f.read().split("flags:")[1].split()[0], 8)
                if flags & os.O_ACCMODE == os.O_RDONLY:
                    continue  # files it serves or reads (configs, mime types)
                st = os.stat(f"/proc/{p}/fd/{fd}")
            except (OSError, IndexError, ValueError):
                continue
            if (st.st_mode & 0o170000) == 0o100000:  # S_IFREG
                total += st.st_size
    return total


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for n in files:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
    return total


def fd_count(pid):
    return sum(len(os.listdir(f"/proc/{p}/fd")) for p in tree_pids(pid)
               if os.path.isdir(f"/proc/{p}/fd"))


def render(template, dest, **values):
    with open(os.path.join(PEERS, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k.upper()}@", str(v))
    with open(dest, "w") as f:
        f.write(text)
    return dest


class Server:
    """One started server: its process, ports and directory."""

    def __init__(self, name, cmd, workdir, ports, kind, tmpdir=None):
        self.name, self.workdir, self.ports, self.kind = name, workdir, ports, kind
        self.tmpdir = tmpdir
        self.log = open(os.path.join(workdir, "server.log"), "wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)
        self.pid = self.proc.pid

    @property
    def port(self):
        return self.ports[0]

    def wait_ready(self, timeout=15.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            if all(_connectable(p) for p in self.ports):
                return self
            time.sleep(0.05)
        self.stop()
        with open(os.path.join(self.workdir, "server.log"), errors="replace") as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"{self.name} did not start on {self.ports}:\n{tail}")

    def stop(self):
        stop_all([self])


def stop_all(started):
    """TERM to every server at once, then wait for each (KILL after 5 s): by PID only."""
    for s in started:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
    for s in reversed(started):
        try:
            s.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()
        s.log.close()


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _dir(base, name, mode=0o755):
    d = os.path.join(base, name)
    os.makedirs(d, exist_ok=True)
    # nginx workers (www-data), squid (proxy) and tinyproxy (nobody) drop root: they must
    # reach their directory, and squid/tinyproxy write their logs there.
    os.chmod(d, mode)
    return d


def start_origin(base, sizes):
    """nginx serving files of the given {name: bytes}, sparse (no disk, page-cache reads)."""
    d = _dir(base, "origin")
    www = _dir(d, "www")
    for name, size in sizes.items():
        with open(os.path.join(www, name), "wb") as f:
            f.truncate(size)
    port = free_port()
    conf = render("origin-nginx.conf", os.path.join(d, "nginx.conf"), port=port, dir=d)
    return Server("origin", ["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
                  d, [port], "origin").wait_ready()


def origin_accepts(origin):
    """Connections the origin has accepted so far (stub_status), this query excluded."""
    with urllib.request.urlopen(f"http://127.0.0.1:{origin.port}/stub", timeout=5) as r:
        text = r.read().decode()
    return int(text.splitlines()[2].split()[0]) - 1


def start_pooled(base, pooled_bin, origin_port, access_log=False):
    name = "pooled-log" if access_log else "pooled"
    d = _dir(base, name)
    port, side = free_port(), free_port()
    conf = render("pooled.yaml", os.path.join(d, "pooled.yaml"), port=port, sidecar_port=side,
                  origin_port=origin_port, access_log="true" if access_log else "false",
                  dir=d)
    return Server(name, [pooled_bin, "--config", conf], d, [port, side], "forward").wait_ready()


FLOOR_BIN = "floor_relay"  # peers/floor_relay.c, compiled by bench/run into the run's dir


def start_peer(base, name, origin_port):
    """nginx (reverse), haproxy (reverse), squid (forward), tinyproxy (forward), and the
    floor: a byte relay (reverse, no HTTP), the binary bench/run builds at base/floor_relay."""
    d = _dir(base, name, 0o777)
    port = free_port()
    vals = dict(port=port, origin_port=origin_port, dir=d)
    if name == "nginx":
        conf = render("nginx.conf", os.path.join(d, "nginx.conf"), **vals)
        cmd, kind = ["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")], "reverse"
        tmp = os.path.join(d, "proxy_temp")
    elif name == "haproxy":
        conf = render("haproxy.cfg", os.path.join(d, "haproxy.cfg"), **vals)
        cmd, kind, tmp = ["haproxy", "-db", "-f", conf], "reverse", None
    elif name == "squid":
        conf = render("squid.conf", os.path.join(d, "squid.conf"), **vals)
        cmd, kind, tmp = ["squid", "-N", "-f", conf], "forward", None
    elif name == "tinyproxy":
        conf = render("tinyproxy.conf", os.path.join(d, "tinyproxy.conf"), **vals)
        cmd, kind, tmp = ["tinyproxy", "-d", "-c", conf], "forward", None
    elif name == "floor":
        exe = os.path.join(base, FLOOR_BIN)
        if not os.access(exe, os.X_OK):
            raise RuntimeError(f"floor: no {exe}: bench/run compiles peers/floor_relay.c there")
        cmd, kind, tmp = [exe, str(port), str(origin_port)], "reverse", None
    else:
        raise ValueError(name)
    return Server(name, cmd, d, [port], kind, tmp).wait_ready()
