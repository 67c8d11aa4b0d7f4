"""Fixtures for pooled's integration tests.

  origin(*args)           -> kit.Origin   (tests/support/origin.py, ended by PID at teardown)
  pooled(config=None, ...) -> kit.Pooled  (the daemon; SIGTERM at teardown must exit 0)
  echo_server()           -> kit.EchoServer (raw TCP echo, in-process)

The helpers themselves live in tests/support/kit.py (importable as `kit` here).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import kit  # noqa: E402


def pytest_report_header(config):
    return "pooled binary: %s (exists: %s)" % (kit.pooled_bin(), os.path.exists(kit.pooled_bin()))


@pytest.fixture
def origin():
    started = []

    def start(*args):
        o = kit.Origin(*args)
        started.append(o)
        return o

    yield start
    for o in started:
        o.stop()


@pytest.fixture
def pooled_bin():
    path = kit.pooled_bin()
    if not os.path.exists(path):
        pytest.fail("pooled binary not found at %s (build it or set POOLED_BIN)" % path)
    return path


@pytest.fixture
def pooled(tmp_path, pooled_bin):
    """Factory: pooled(config_dict, args=(), expected_listeners=None, config_text=None)."""
    started = []

    def start(config=None, **kwargs):
        p = kit.Pooled(config, tmpdir=str(tmp_path), **kwargs)
        started.append(p)
        return p

    yield start
    errors = []
    for p in started:
        try:
            p.stop(check=True)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("pooled shutdown: " + "\n".join(errors), pytrace=False)


@pytest.fixture
def echo_server():
    servers = []

    def start():
        s = kit.EchoServer()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def proxies():
    """requests' proxies= for a pooled: proxies(p)."""
    return lambda p: {"http": p.proxy_url, "https": p.proxy_url}
