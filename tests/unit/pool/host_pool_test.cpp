// Specification of upstream connection pooling on a real libuv loop with real loopback sockets:
// checkout and queueing, reuse after a loop turn, LIFO reuse, per-host, pending and total
// limits, idle expiry, origin closes and Keep-Alive hints, connect failures and cancellation.
#include "core/worker.h"
#include "pool/pool_manager.h"
#include "pool/upstream_connection.h"
#include "unit/support/loopback_origin.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

using namespace pooled;
using namespace std::chrono_literals;
using pooled::test::LoopbackOrigin;

namespace {

// A request waiting for a connection; once it has one it can send a GET on it.
struct TestWaiter : PoolWaiter, UpstreamEvents {
    UpstreamConnection* connection = nullptr;
    int connections = 0; // onPoolStream calls
    std::optional<ProxyError> error;
    int responses = 0;
    std::optional<ProxyError> upstream_error;

    void onPoolStream(PoolStream stream) override {
        connection = &stream.connection();
        ++connections;
    }
    void onPoolError(const ProxyError& e) override {
        error = e;
        if (on_error)
            on_error();
    }
    std::function<void()> on_error; // what its owner does next (a retry, say)

    void onUpstreamResponseComplete(UpstreamConnection&) override { ++responses; }
    void onUpstreamError(UpstreamConnection&, const ProxyError& e) override { upstream_error = e; }

    // Sends a GET on the connection this waiter holds.
    void sendRequest() {
        REQUIRE(connection != nullptr);
        connection->setEvents(this);
        connection->beginRequest(false);
        REQUIRE(connection->write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        connection->requestSent();
    }
};

Config testConfig() {
    Config c;
    c.access_log.enabled = false;
    c.pool.max_connections_per_host = 2;
    c.pool.max_pending = 2;
    c.pool.idle_timeout = 30000ms;
    c.timeouts.connect = 2000ms;
    c.timeouts.upstream_first_byte = 2000ms;
    c.timeouts.drain = 1000ms;
    return c;
}

// A loop, a Worker (never started: it would bind listeners), one loopback origin, and every
// waiter of the test (owned here, so they outlive the worker's shutdown even when a REQUIRE
// fails). Tests end with REQUIRE(h.finish()): shutdown, run out, loop closes cleanly.
struct Harness {
    uv_loop_t loop{};
    uv_timer_t guard{}; // wakes the loop at a deadline; unreferenced, so it keeps nothing alive
    std::unique_ptr<Worker> worker;
    std::deque<LoopbackOrigin> origins;
    std::deque<TestWaiter> waiters;
    spdlog::level::level_enum saved_level = spdlog::get_level();
    bool finished = false;

    explicit Harness(Config config = testConfig()) {
        spdlog::set_level(spdlog::level::warn);
        uv_loop_init(&loop);
        uv_timer_init(&loop, &guard);
        uv_unref(reinterpret_cast<uv_handle_t*>(&guard));
        worker = std::make_unique<Worker>(&loop, std::make_shared<const Config>(config));
        origins.emplace_back(&loop);
    }

    ~Harness() {
        if (!finished)
            finish();
        spdlog::set_level(saved_level);
    }

    LoopbackOrigin& origin(size_t i = 0) { return origins.at(i); }
    PoolKey key(size_t i = 0) { return PoolKey{"http", "127.0.0.1", origin(i).port()}; }
    PoolManager& pools() { return worker->pools(); }
    TestWaiter& waiter() { return waiters.emplace_back(); }

    Checkout checkout(TestWaiter& w, const PoolKey& k) {
        auto result = pools().checkout(k, w);
        if (result.kind == Checkout::Kind::Ready)
            w.onPoolStream(result.stream);
        return result;
    }
    Checkout checkout(TestWaiter& w) { return checkout(w, key()); }

    // The pool's stats, or all zeros once the pool was swept away.
    HostPoolStats stats(const PoolKey& k) {
        auto it = pools().pools().find(k);
        return it == pools().pools().end() ? HostPoolStats{} : it->second->stats();
    }
    HostPoolStats stats() { return stats(key()); }
    HostPool* pool(const PoolKey& k) {
        auto it = pools().pools().find(k);
        return it == pools().pools().end() ? nullptr : it->second.get();
    }

    // Runs the loop until done() holds or timeout_ms passed; returns done().
    bool runUntil(const std::function<bool()>& done, uint64_t timeout_ms = 5000) {
        uv_update_time(&loop);
        uint64_t deadline = uv_now(&loop) + timeout_ms;
        uv_timer_start(&guard, [](uv_timer_t*) {}, timeout_ms, 0);
        while (!done() && uv_now(&loop) < deadline)
            uv_run(&loop, UV_RUN_ONCE);
        uv_timer_stop(&guard);
        return done();
    }
    void runFor(uint64_t ms) { runUntil([] { return false; }, ms); }
    // One loop iteration without blocking: the worker's tick advances.
    void turn() { uv_run(&loop, UV_RUN_NOWAIT); }

    // Gets a connection for a fresh waiter (opening one if needed), sends a request on it and
    // waits for the response. The waiter still holds the connection afterwards.
    TestWaiter& served(const PoolKey& k) {
        auto& w = waiter();
        checkout(w, k);
        REQUIRE(runUntil([&] { return w.connection != nullptr || w.error.has_value(); }));
        REQUIRE(w.connection != nullptr);
        w.sendRequest();
        REQUIRE(runUntil([&] { return w.responses == 1 || w.upstream_error.has_value(); }));
        REQUIRE(w.responses == 1);
        return w;
    }
    TestWaiter& served() { return served(key()); }

    // Shutdown, run the loop until nothing is left (bounded), and close it.
    bool finish() {
        finished = true;
        worker->shutdown();
        for (auto& o : origins)
            o.close();
        uv_update_time(&loop);
        uint64_t deadline = uv_now(&loop) + 5000;
        uv_timer_start(&guard, [](uv_timer_t*) {}, 5000, 0);
        while (uv_run(&loop, UV_RUN_ONCE) != 0 && uv_now(&loop) < deadline) {
        }
        uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
        uv_run(&loop, UV_RUN_DEFAULT);
        worker.reset();
        return uv_loop_close(&loop) == 0;
    }
};

// A TCP port on 127.0.0.1 that refuses connections: bound, never listening, held for the test.
struct RefusingPort {
    int fd = -1;
    uint16_t port = 0;
    RefusingPort() {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t length = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
        port = ntohs(a.sin_port);
    }
    ~RefusingPort() { ::close(fd); }
};

} // namespace

TEST_CASE("a checkout on an empty pool opens a connection and queues the waiter", "[pool]") {
    Harness h;
    auto& w = h.waiter();
    auto result = h.checkout(w);
    CHECK(result.kind == Checkout::Kind::Queued);
    CHECK_FALSE(result.stream);
    CHECK(w.queued());
    CHECK(h.stats().connecting == 1);
    CHECK(h.stats().pending == 1);
    CHECK(h.pools().totalConnections() == 1);

    REQUIRE(h.runUntil([&] { return w.connection != nullptr; }));
    CHECK(w.connections == 1);
    CHECK_FALSE(w.queued());
    CHECK(h.origin().accepted() == 1);
    auto s = h.stats();
    CHECK(s.connecting == 0);
    CHECK(s.pending == 0);
    CHECK(s.active == 1);
    CHECK(s.idle == 0);

    w.sendRequest();
    REQUIRE(h.runUntil([&] { return w.responses == 1; }));
    CHECK(h.origin().requests() == 1);
    CHECK(w.connection->responseAllowsReuse());
    REQUIRE(h.finish());
}

TEST_CASE("a released connection is reused, but only after a loop turn", "[pool]") {
    Harness h;
    auto& first = h.served();
    uint64_t id = first.connection->id();
    h.pools().release(*first.connection, true);
    CHECK(h.stats().idle == 1);
    CHECK(h.stats().active == 0);

    SECTION("a checkout in the same tick is queued and served on the next turn") {
        auto& next = h.waiter();
        CHECK(h.checkout(next).kind == Checkout::Kind::Queued);
        CHECK(h.stats().connecting == 0); // no new connection for it
        REQUIRE(h.runUntil([&] { return next.connection != nullptr; }));
        CHECK(next.connection->id() == id);
    }
    SECTION("a checkout after a loop turn gets it at once") {
        h.turn();
        auto& next = h.waiter();
        auto result = h.checkout(next);
        REQUIRE(result.kind == Checkout::Kind::Ready);
        CHECK(result.stream.connection().id() == id);
        CHECK(h.stats().idle == 0);
        CHECK(h.stats().active == 1);
        next.sendRequest();
        REQUIRE(h.runUntil([&] { return next.responses == 1; }));
        CHECK(next.connection->requests() == 2);
    }
    CHECK(h.origin().accepted() == 1);
    REQUIRE(h.finish());
}

TEST_CASE("a response with bytes after it is not kept, even when released from its "
          "completion callback",
          "[pool]") {
    // A client session returns the connection as soon as it hears the response ended; the
    // bytes after it (a second, unrequested response) must already count against reuse.
    struct ReleasingWaiter : TestWaiter {
        PoolManager* pools = nullptr;
        void onUpstreamResponseComplete(UpstreamConnection& c) override {
            ++responses;
            connection = nullptr;
            pools->release(c, true);
        }
    };
    ReleasingWaiter w; // declared first: outlives the harness's shutdown
    Harness h;
    h.origin().setResponse(std::string(LoopbackOrigin::kOk) +
                           "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL");
    w.pools = &h.pools();
    h.checkout(w);
    REQUIRE(h.runUntil([&] { return w.connection != nullptr; }));
    w.sendRequest();
    REQUIRE(h.runUntil([&] { return w.responses == 1; }));
    CHECK(h.stats().idle == 0);
    CHECK(h.pools().totalConnections() == 0);
    REQUIRE(h.runUntil([&] { return h.origin().peerCloses() == 1; }));
    REQUIRE(h.finish());
}

TEST_CASE("idle connections are reused most recently released first (LIFO)", "[pool]") {
    Harness h;
    auto& a = h.waiter();
    auto& b = h.waiter();
    h.checkout(a);
    h.checkout(b);
    REQUIRE(h.runUntil([&] { return a.connection && b.connection; }));
    CHECK(h.origin().accepted() == 2);
    a.sendRequest();
    b.sendRequest();
    REQUIRE(h.runUntil([&] { return a.responses == 1 && b.responses == 1; }));
    uint64_t a_id = a.connection->id();
    uint64_t b_id = b.connection->id();
    REQUIRE(a_id != b_id);

    h.pools().release(*a.connection, true);
    h.pools().release(*b.connection, true); // released last
    h.turn();
    CHECK(h.stats().idle == 2);

    auto& c = h.waiter();
    auto& d = h.waiter();
    auto first = h.checkout(c);
    REQUIRE(first.kind == Checkout::Kind::Ready);
    CHECK(first.stream.connection().id() == b_id);
    auto second = h.checkout(d);
    REQUIRE(second.kind == Checkout::Kind::Ready);
    CHECK(second.stream.connection().id() == a_id);
    CHECK(h.origin().accepted() == 2);
    REQUIRE(h.finish());
}

TEST_CASE("max_connections_per_host: the third waiter waits for a released connection",
          "[pool]") {
    Harness h;
    auto& a = h.waiter();
    auto& b = h.waiter();
    auto& c = h.waiter();
    // max_pending 2 allows two queued waiters; the third is queued once those are served.
    CHECK(h.checkout(a).kind == Checkout::Kind::Queued);
    CHECK(h.checkout(b).kind == Checkout::Kind::Queued);
    REQUIRE(h.runUntil([&] { return a.connection && b.connection; }));
    CHECK(h.checkout(c).kind == Checkout::Kind::Queued);
    CHECK(h.stats().connecting == 0);
    h.runFor(50);
    CHECK(h.origin().accepted() == 2);
    CHECK(c.connection == nullptr);
    CHECK(h.stats().pending == 1);
    CHECK(h.stats().active == 2);

    SECTION("a reusable release hands the same connection to the waiter") {
        a.sendRequest();
        REQUIRE(h.runUntil([&] { return a.responses == 1; }));
        uint64_t id = a.connection->id();
        h.pools().release(*a.connection, true);
        REQUIRE(h.runUntil([&] { return c.connection != nullptr; }));
        CHECK(c.connection->id() == id);
        CHECK(h.origin().accepted() == 2);
    }
    SECTION("a non-reusable release makes room for a new connection") {
        uint64_t id = a.connection->id();
        h.pools().release(*a.connection, false);
        REQUIRE(h.runUntil([&] { return c.connection != nullptr; }));
        CHECK(c.connection->id() != id);
        CHECK(h.origin().accepted() == 3);
        REQUIRE(h.runUntil([&] { return h.origin().peerCloses() == 1; }));
    }
    CHECK(h.stats().pending == 0);
    REQUIRE(h.finish());
}

TEST_CASE("max_connections_per_host: three waiters open only two connections", "[pool]") {
    Config config = testConfig();
    config.pool.max_pending = 3;
    Harness h(config);
    auto& x = h.waiter();
    auto& y = h.waiter();
    auto& z = h.waiter();
    h.checkout(x);
    h.checkout(y);
    h.checkout(z);
    CHECK(h.stats().connecting == 2);
    CHECK(h.stats().pending == 3);
    REQUIRE(h.runUntil([&] { return x.connection && y.connection; }));
    h.runFor(50);
    CHECK(h.origin().accepted() == 2);
    CHECK(z.connection == nullptr);
    x.sendRequest();
    REQUIRE(h.runUntil([&] { return x.responses == 1; }));
    h.pools().release(*x.connection, true);
    REQUIRE(h.runUntil([&] { return z.connection != nullptr; }));
    CHECK(z.connection->id() == x.connection->id());
    CHECK(h.origin().accepted() == 2);
    REQUIRE(h.finish());
}

TEST_CASE("max_pending: the waiter past the limit fails with 503 connection_limit_reached",
          "[pool]") {
    Harness h;
    auto& a = h.waiter();
    auto& b = h.waiter();
    auto& c = h.waiter();
    CHECK(h.checkout(a).kind == Checkout::Kind::Queued);
    CHECK(h.checkout(b).kind == Checkout::Kind::Queued);
    auto result = h.checkout(c);
    REQUIRE(result.kind == Checkout::Kind::Failed);
    CHECK(result.error.status == 503);
    CHECK(std::string(result.error.token) == "connection_limit_reached");
    CHECK_FALSE(c.queued());
    CHECK(h.stats().pending == 2);
    REQUIRE(h.runUntil([&] { return a.connection && b.connection; }));
    CHECK(c.connection == nullptr);
    CHECK(h.origin().accepted() == 2);
    REQUIRE(h.finish());
}

TEST_CASE("an idle connection is closed after idle_timeout", "[pool]") {
    Config config = testConfig();
    config.pool.idle_timeout = 150ms;
    Harness h(config);
    auto& w = h.served();
    h.pools().release(*w.connection, true);
    uint64_t released = uv_hrtime();
    CHECK(h.stats().idle == 1);
    CHECK(h.stats().idle_timeout_ms == 150);

    REQUIRE(h.runUntil([&] { return h.origin().peerCloses() == 1; }));
    uint64_t elapsed_ms = (uv_hrtime() - released) / 1000000;
    CHECK(elapsed_ms >= 140);
    CHECK(h.stats().idle == 0);
    CHECK(h.pools().totalConnections() == 0);
    CHECK(h.origin().open() == 0);
    REQUIRE(h.finish());
}

TEST_CASE("an idle connection the origin closes leaves the pool at once and teaches it a "
          "shorter idle timeout",
          "[pool]") {
    Harness h;
    // Two connections: `used` goes idle, `holder` stays checked out (so the pool stays).
    auto& used = h.waiter();
    auto& holder = h.waiter();
    h.checkout(used);
    h.checkout(holder);
    REQUIRE(h.runUntil([&] { return used.connection && holder.connection; }));
    used.sendRequest();
    REQUIRE(h.runUntil([&] { return used.responses == 1; }));
    h.pools().release(*used.connection, true);
    CHECK(h.stats().idle == 1);
    CHECK(h.stats().idle_timeout_ms == 30000);

    h.runFor(100); // the origin's "idle timeout": about 100 ms
    REQUIRE(h.origin().closeServed() == 1);
    REQUIRE(h.runUntil([&] { return h.stats().idle == 0; }, 1000));
    CHECK(h.stats().active == 1);
    CHECK(h.pools().totalConnections() == 1);
    REQUIRE(h.pool(h.key()) != nullptr);
    int64_t learned = h.pool(h.key())->effectiveIdleTimeoutMs();
    CHECK(learned < 100);
    CHECK(learned >= 50);
    CHECK(h.stats().idle_timeout_ms == learned);
    REQUIRE(h.finish());
}

TEST_CASE("an idle timeout learned from an origin's close outlives an emptied pool",
          "[pool]") {
    // An empty HostPool is swept on a later turn; what it learned must survive it, or an
    // origin that closes after ~100 ms keeps racing the configured 30 s idle timeout.
    Harness h;
    auto& w = h.served();
    h.pools().release(*w.connection, true);
    h.runFor(100);
    REQUIRE(h.origin().closeServed() == 1);
    REQUIRE(h.runUntil([&] { return h.stats().idle == 0; }, 1000));
    h.runFor(20); // the sweep runs
    auto& next = h.served();
    h.pools().release(*next.connection, true);
    CHECK(h.stats().idle_timeout_ms < 100);
    REQUIRE(h.finish());
}

TEST_CASE("a Keep-Alive: timeout=1 response lowers the idle timeout below a second", "[pool]") {
    Harness h;
    h.origin().setResponse("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1, max=100\r\n"
                           "Content-Length: 2\r\n\r\nok");
    auto& w = h.served();
    CHECK(w.connection->keepAliveHintMs() == 1000);
    h.pools().release(*w.connection, true);
    CHECK(h.stats().idle == 1);
    CHECK(h.stats().idle_timeout_ms <= 1000);
    CHECK(h.stats().idle_timeout_ms > 0);
    // ...and the idle connection is closed by pooled before the origin's second is up.
    uint64_t released = uv_hrtime();
    REQUIRE(h.runUntil([&] { return h.origin().peerCloses() == 1; }, 3000));
    CHECK((uv_hrtime() - released) / 1000000 < 1000);
    CHECK(h.origin().originCloses() == 0);
    REQUIRE(h.finish());
}

TEST_CASE("connect refused fails the waiter with 502 connection_refused, without retrying",
          "[pool]") {
    Harness h;
    RefusingPort refusing;
    PoolKey key{"http", "127.0.0.1", refusing.port};
    auto& a = h.waiter();
    auto& b = h.waiter();
    uint64_t started = uv_hrtime();
    CHECK(h.checkout(a, key).kind == Checkout::Kind::Queued);
    CHECK(h.checkout(b, key).kind == Checkout::Kind::Queued);
    REQUIRE(h.runUntil([&] { return a.error && b.error; }, 3000));
    CHECK(a.error->status == 502);
    CHECK(std::string(a.error->token) == "connection_refused");
    CHECK(b.error->status == 502);
    CHECK(a.connection == nullptr);
    CHECK(b.connection == nullptr);
    CHECK(h.stats(key).connecting == 0);
    CHECK(h.stats(key).pending == 0);
    CHECK(h.pools().totalConnections() == 0);
    // Nothing keeps trying: the loop stays quiet.
    h.runFor(50);
    CHECK(h.pools().totalConnections() == 0);
    CHECK((uv_hrtime() - started) / 1000000 < 2000);
    REQUIRE(h.finish());
}

TEST_CASE("cancel() removes a queued waiter, and its connection goes idle", "[pool]") {
    Harness h;
    auto& gone = h.waiter();
    CHECK(h.checkout(gone).kind == Checkout::Kind::Queued);
    h.pools().cancel(gone);
    CHECK_FALSE(gone.queued());
    CHECK(h.stats().pending == 0);
    REQUIRE(h.runUntil([&] { return h.stats().idle == 1; }));
    CHECK(gone.connection == nullptr);
    CHECK(gone.connections == 0);
    CHECK_FALSE(gone.error.has_value());
    // The warm connection serves the next request without a new connect.
    auto& next = h.waiter();
    CHECK(h.checkout(next).kind == Checkout::Kind::Ready);
    CHECK(h.origin().accepted() == 1);
    REQUIRE(h.finish());
}

TEST_CASE("connections that finish connecting after their waiters left keep to max_idle_per_host",
          "[pool]") {
    // After a burst the queue can drain while connects are still in flight.
    Config config = testConfig();
    config.pool.max_idle_per_host = 1;
    Harness h(config);
    auto& a = h.waiter();
    auto& b = h.waiter();
    CHECK(h.checkout(a).kind == Checkout::Kind::Queued);
    CHECK(h.checkout(b).kind == Checkout::Kind::Queued);
    h.pools().cancel(a);
    h.pools().cancel(b);
    REQUIRE(h.runUntil([&] { return h.origin().accepted() == 2 && h.stats().connecting == 0; }));
    CHECK(h.stats().idle == 1);
    REQUIRE(h.runUntil([&] { return h.origin().peerCloses() == 1; }));
    REQUIRE(h.finish());
}

TEST_CASE("cancel() of one waiter keeps the order of the others", "[pool]") {
    Config config = testConfig();
    config.pool.max_connections_per_host = 1;
    config.pool.max_pending = 3;
    Harness h(config);
    auto& a = h.waiter();
    auto& b = h.waiter();
    auto& c = h.waiter();
    h.checkout(a);
    h.checkout(b);
    h.checkout(c);
    h.pools().cancel(b);
    CHECK(h.stats().pending == 2);
    REQUIRE(h.runUntil([&] { return a.connection != nullptr; }));
    a.sendRequest();
    REQUIRE(h.runUntil([&] { return a.responses == 1; }));
    h.pools().release(*a.connection, true);
    REQUIRE(h.runUntil([&] { return c.connection != nullptr; }));
    CHECK(b.connection == nullptr);
    CHECK(h.origin().accepted() == 1);
    REQUIRE(h.finish());
}

TEST_CASE("max_connections_total: an idle connection of another key is closed to make room",
          "[pool]") {
    Config config = testConfig();
    config.pool.max_connections_total = 1;
    Harness h(config);
    h.origins.emplace_back(&h.loop);
    auto& first = h.served(h.key(0));
    h.pools().release(*first.connection, true);
    h.turn();
    CHECK(h.stats(h.key(0)).idle == 1);

    auto& other = h.waiter();
    CHECK(h.checkout(other, h.key(1)).kind == Checkout::Kind::Queued);
    CHECK(h.stats(h.key(0)).idle == 0);
    CHECK(h.pools().totalConnections() == 1);
    REQUIRE(h.runUntil([&] { return other.connection != nullptr; }));
    CHECK(h.origin(1).accepted() == 1);
    REQUIRE(h.runUntil([&] { return h.origin(0).peerCloses() == 1; }));
    CHECK(h.pools().totalConnections() == 1);
    REQUIRE(h.finish());
}

TEST_CASE("max_connections_total: a busy connection elsewhere makes the waiter wait",
          "[pool]") {
    Config config = testConfig();
    config.pool.max_connections_total = 1;
    Harness h(config);
    h.origins.emplace_back(&h.loop);
    auto& first = h.served(h.key(0));

    auto& other = h.waiter();
    CHECK(h.checkout(other, h.key(1)).kind == Checkout::Kind::Queued);
    h.runFor(50);
    CHECK(other.connection == nullptr);
    CHECK(h.origin(1).accepted() == 0);
    CHECK(h.pools().totalConnections() == 1);

    // Closing the busy connection frees the slot for the starved pool.
    h.pools().release(*first.connection, false);
    REQUIRE(h.runUntil([&] { return other.connection != nullptr; }));
    CHECK(h.origin(1).accepted() == 1);
    CHECK(h.pools().totalConnections() == 1);
    REQUIRE(h.finish());
}

TEST_CASE("max_connections_total: a connection going idle serves a waiter of another key "
          "without waiting for its idle timeout",
          "[pool]") {
    // Keeping it idle would leave the starved pool waiting for the idle timeout (30 s).
    Config config = testConfig();
    config.pool.max_connections_total = 1;
    Harness h(config);
    h.origins.emplace_back(&h.loop);
    auto& first = h.served(h.key(0));
    auto& other = h.waiter();
    CHECK(h.checkout(other, h.key(1)).kind == Checkout::Kind::Queued);
    h.pools().release(*first.connection, true);
    CHECK(h.runUntil([&] { return other.connection != nullptr; }, 1000));
    REQUIRE(h.finish());
}

TEST_CASE("max_idle_per_host does not close connections that queued waiters are about to take",
          "[pool]") {
    Config config = testConfig();
    config.pool.max_idle_per_host = 1;
    config.pool.max_pending = 4;
    Harness h(config);
    auto& a = h.waiter();
    auto& b = h.waiter();
    auto& c = h.waiter();
    auto& d = h.waiter();
    h.checkout(a);
    h.checkout(b);
    REQUIRE(h.runUntil([&] { return a.connection && b.connection; }));
    h.checkout(c);
    h.checkout(d);
    a.sendRequest();
    b.sendRequest();
    REQUIRE(h.runUntil([&] { return a.responses == 1 && b.responses == 1; }));
    // Both come back in one turn, over max_idle_per_host, while two waiters queue for them.
    h.pools().release(*a.connection, true);
    h.pools().release(*b.connection, true);
    REQUIRE(h.runUntil([&] { return c.connection && d.connection; }));
    CHECK(h.origin().accepted() == 2);
    c.sendRequest();
    d.sendRequest();
    REQUIRE(h.runUntil([&] { return c.responses == 1 && d.responses == 1; }));
    // Nobody waits now: the cap applies again.
    h.pools().release(*c.connection, true);
    h.pools().release(*d.connection, true);
    CHECK(h.stats().idle == 1);
    REQUIRE(h.runUntil([&] { return h.origin().peerCloses() == 1; }));
    REQUIRE(h.finish());
}

TEST_CASE("connects go on in waves of max_connecting_per_host until every waiter has one",
          "[pool]") {
    // A burst must not stall once the first wave connected: each connection that comes up
    // frees a connect slot for the next waiter, without waiting for any release.
    Config config = testConfig();
    config.pool.max_connections_per_host = 3;
    config.pool.max_connecting_per_host = 1;
    config.pool.max_pending = 3;
    Harness h(config);
    auto& a = h.waiter();
    auto& b = h.waiter();
    auto& c = h.waiter();
    h.checkout(a);
    h.checkout(b);
    h.checkout(c);
    CHECK(h.stats().connecting == 1);
    REQUIRE(h.runUntil([&] { return a.connection && b.connection && c.connection; }, 3000));
    CHECK(h.origin().accepted() == 3);
    CHECK(h.stats().active == 3);
    CHECK(h.stats().pending == 0);
    REQUIRE(h.finish());
}

TEST_CASE("a failed connect fails the waiters it had, not one a handler queues meanwhile",
          "[pool]") {
    // One slot for each origin (max_connections_total 2): the served origin holds one busy,
    // a refusing origin's connect holds the other, and a waiter of the served origin waits
    // for a slot. When the connect fails, its slot goes to that waiter; the refused waiters'
    // owner queues a retry, which can only wait for a slot: it must keep waiting rather than
    // be failed with a connect error that was never its own.
    Config config = testConfig();
    config.pool.max_connections_total = 2;
    config.pool.max_connecting_per_host = 1;
    config.pool.max_pending = 4;
    Harness h(config);
    RefusingPort refusing;
    PoolKey refused_key{"http", "127.0.0.1", refusing.port};
    h.served(h.key()); // busy, held
    auto& a = h.waiter();
    auto& b = h.waiter();
    auto& retry = h.waiter();
    CHECK(h.checkout(a, refused_key).kind == Checkout::Kind::Queued);
    CHECK(h.checkout(b, refused_key).kind == Checkout::Kind::Queued);
    auto& starved = h.waiter();
    CHECK(h.checkout(starved, h.key()).kind == Checkout::Kind::Queued);
    CHECK(h.pools().totalConnections() == 2);
    a.on_error = [&] { h.pools().checkout(refused_key, retry); };
    REQUIRE(h.runUntil([&] { return a.error && b.error; }, 3000));
    CHECK(std::string(a.error->token) == "connection_refused");
    CHECK(std::string(b.error->token) == "connection_refused");
    REQUIRE(h.runUntil([&] { return starved.connection != nullptr; }, 3000));
    CHECK_FALSE(retry.error.has_value());
    CHECK(retry.queued());
    REQUIRE(h.finish());
}

TEST_CASE("a stream on a new connection reports its setup; on a reused one only the reuse",
          "[pool][stream]") {
    Harness h;
    auto& first = h.served();
    PoolStream fresh(*first.connection);
    StreamSetup s = fresh.setup();
    CHECK_FALSE(s.reused);
    CHECK(s.dns_us >= 0);
    CHECK(s.connect_us >= 0);
    CHECK(s.tls_us == -1); // plain http
    CHECK(s.connection_requests == 1);
    uint64_t id = s.connection_id;
    CHECK(id == first.connection->id());
    h.pools().release(*first.connection, true);
    h.turn();
    auto& second = h.served();
    StreamSetup again = PoolStream(*second.connection).setup();
    CHECK(again.reused);
    CHECK(again.connection_id == id);
    CHECK(again.connection_requests == 2);
    CHECK(again.dns_us == -1);
    CHECK(again.connect_us == -1);
    REQUIRE(h.finish());
}

TEST_CASE("a stream failed as stale only if its connection had waited idle and nothing of "
          "the response arrived",
          "[pool][stream]") {
    Harness h;
    auto& first = h.served();
    // Fresh from connect to its first request, never idle: a failure is the origin's answer.
    CHECK_FALSE(PoolStream(*first.connection).failedAsStale());
    h.pools().release(*first.connection, true);
    h.turn();
    auto& w = h.waiter();
    REQUIRE(h.checkout(w).kind == Checkout::Kind::Ready);
    PoolStream reused(*w.connection);
    reused.begin(w, false);
    CHECK(reused.failedAsStale()); // waited idle, no response byte yet
    REQUIRE(reused.write({"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}));
    reused.requestSent();
    REQUIRE(h.runUntil([&] { return w.responses == 1; }));
    CHECK_FALSE(reused.failedAsStale()); // the response began: never replayed
    REQUIRE(h.finish());
}
