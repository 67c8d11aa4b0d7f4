// Specifies the Resolver on a real libuv loop: /etc/hosts and IP literals, TTL caching of
// answers and failures, coalescing, cancellation, deferred and re-entrant callbacks, and a
// close() that leaves nothing on the loop. The machine has no external network, so unknown
// names fail (by timeout or refusal); the timeouts are kept small for that reason.
#include "dns/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>

namespace {

using namespace pooled;
using namespace std::chrono_literals;

DnsConfig testConfig() {
    DnsConfig config;
    config.timeout = 500ms;
    config.tries = 1;
    config.min_ttl = 1000ms;
    config.max_ttl = 300000ms;
    config.negative_ttl = 2000ms;
    return config;
}

// A loop with one Resolver. Tests end with REQUIRE(h.shutdown()), which closes the resolver
// and checks that the loop can be closed, i.e. that no handle was left behind.
struct Harness {
    uv_loop_t loop{};
    uv_timer_t guard{}; // wakes the loop at runUntil's deadline
    std::unique_ptr<Resolver> resolver;
    bool shut_down = false;

    explicit Harness(const DnsConfig& config = testConfig()) {
        uv_loop_init(&loop);
        uv_timer_init(&loop, &guard);
        resolver = std::make_unique<Resolver>(&loop, config);
    }

    ~Harness() {
        if (!shut_down) {
            shutdown(); // a failed test: still release the loop
        }
    }

    // Runs the loop until done() holds or timeout_ms passed; returns done().
    bool runUntil(const std::function<bool()>& done, uint64_t timeout_ms = 3000) {
        uv_update_time(&loop);
        uint64_t deadline = uv_now(&loop) + timeout_ms;
        uv_timer_start(&guard, [](uv_timer_t*) {}, timeout_ms, 0);
        while (!done() && uv_now(&loop) < deadline) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        uv_timer_stop(&guard);
        return done();
    }

    void runFor(uint64_t ms) {
        runUntil([] { return false; }, ms);
    }

    // already_closed: the test called close() itself and saw on_closed run.
    bool shutdown(bool already_closed = false) {
        shut_down = true;
        bool closed = already_closed;
        resolver->close([&closed] { closed = true; });
        uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
        uv_run(&loop, UV_RUN_DEFAULT);
        resolver.reset();
        return closed && uv_loop_close(&loop) == 0;
    }
};

struct Outcome {
    int calls = 0;
    DnsResult result;
};

Resolver::Callback into(Outcome& outcome) {
    return [&outcome](const DnsResult& result) {
        ++outcome.calls;
        outcome.result = result;
    };
}

std::string ipOf(const sockaddr_storage& address) {
    char text[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, text,
                  sizeof(text));
    } else if (address.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, text,
                  sizeof(text));
    }
    return text;
}

uint16_t portOf(const sockaddr_storage& address) {
    if (address.ss_family == AF_INET) {
        return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
    }
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
}

bool ipv4BeforeIpv6(const DnsResult& result) {
    bool seen_v6 = false;
    for (const auto& address : result.addresses) {
        if (address.ss_family == AF_INET6) {
            seen_v6 = true;
        } else if (seen_v6) {
            return false;
        }
    }
    return true;
}

constexpr const char* kUnresolvable = "no-such-host.invalid";

} // namespace

TEST_CASE("localhost resolves through /etc/hosts with the port filled in", "[dns]") {
    Harness h;
    Outcome outcome;
    h.resolver->resolve("localhost", 8080, into(outcome));
    REQUIRE(h.runUntil([&] { return outcome.calls == 1; }));

    const DnsResult& result = outcome.result;
    REQUIRE(result.ok);
    CHECK(result.error.empty());
    CHECK_FALSE(result.from_cache);
    REQUIRE_FALSE(result.addresses.empty());
    for (const auto& address : result.addresses) {
        std::string ip = ipOf(address);
        CHECK((ip == "127.0.0.1" || ip == "::1"));
        CHECK(portOf(address) == 8080);
    }
    CHECK(ipv4BeforeIpv6(result));
    REQUIRE(h.shutdown());
}

TEST_CASE("host names are case-insensitive", "[dns]") {
    Harness h;
    Outcome outcome;
    h.resolver->resolve("LocalHost", 80, into(outcome));
    REQUIRE(h.runUntil([&] { return outcome.calls == 1; }));
    CHECK(outcome.result.ok);
    REQUIRE(h.shutdown());
}

TEST_CASE("an IPv4 literal resolves without a DNS query", "[dns]") {
    Harness h;
    Outcome outcome;
    h.resolver->resolve("192.0.2.7", 443, into(outcome));
    REQUIRE(h.runUntil([&] { return outcome.calls == 1; }));

    REQUIRE(outcome.result.ok);
    REQUIRE(outcome.result.addresses.size() == 1);
    CHECK(outcome.result.addresses[0].ss_family == AF_INET);
    CHECK(ipOf(outcome.result.addresses[0]) == "192.0.2.7");
    CHECK(portOf(outcome.result.addresses[0]) == 443);
    CHECK(h.resolver->stats().queries == 0);
    CHECK(h.resolver->stats().literals == 1);
    REQUIRE(h.shutdown());
}

TEST_CASE("an IPv6 literal resolves without a DNS query, with or without brackets", "[dns]") {
    std::string literal = GENERATE(std::string("2001:db8::1"), std::string("[2001:db8::1]"));
    Harness h;
    Outcome outcome;
    h.resolver->resolve(literal, 8443, into(outcome));
    REQUIRE(h.runUntil([&] { return outcome.calls == 1; }));

    REQUIRE(outcome.result.ok);
    REQUIRE(outcome.result.addresses.size() == 1);
    CHECK(outcome.result.addresses[0].ss_family == AF_INET6);
    CHECK(ipOf(outcome.result.addresses[0]) == "2001:db8::1");
    CHECK(portOf(outcome.result.addresses[0]) == 8443);
    CHECK(h.resolver->stats().queries == 0);
    REQUIRE(h.shutdown());
}

TEST_CASE("brackets around something other than an IPv6 address fail without a query",
          "[dns]") {
    std::string host = GENERATE(std::string("[192.0.2.1]"), std::string("[not-an-ip]"));
    Harness h;
    Outcome outcome;
    h.resolver->resolve(host, 80, into(outcome));
    REQUIRE(h.runUntil([&] { return outcome.calls == 1; }));
    CHECK_FALSE(outcome.result.ok);
    CHECK_FALSE(outcome.result.error.empty());
    CHECK(h.resolver->stats().queries == 0);
    REQUIRE(h.shutdown());
}

TEST_CASE("the callback is never called from inside resolve()", "[dns]") {
    Harness h;
    Outcome literal, first, cached;
    h.resolver->resolve("127.0.0.1", 80, into(literal));
    h.resolver->resolve("localhost", 80, into(first)); // /etc/hosts: c-ares answers inline
    CHECK(literal.calls == 0);
    CHECK(first.calls == 0);
    REQUIRE(h.runUntil([&] { return literal.calls == 1 && first.calls == 1; }));

    h.resolver->resolve("localhost", 80, into(cached));
    CHECK(cached.calls == 0);
    REQUIRE(h.runUntil([&] { return cached.calls == 1; }));
    CHECK(cached.result.from_cache);
    REQUIRE(h.shutdown());
}

TEST_CASE("a second lookup within the TTL is answered from the cache", "[dns]") {
    Harness h;
    Outcome first, second;
    h.resolver->resolve("localhost", 80, into(first));
    REQUIRE(h.runUntil([&] { return first.calls == 1; }));
    REQUIRE(first.result.ok);
    CHECK(h.resolver->cacheSize() == 1);

    h.resolver->resolve("localhost", 8080, into(second));
    REQUIRE(h.runUntil([&] { return second.calls == 1; }));
    REQUIRE(second.result.ok);
    CHECK(second.result.from_cache);
    CHECK(h.resolver->stats().queries == 1);
    CHECK(h.resolver->stats().cache_hits == 1);
    SECTION("and carries the port of the request, not the one that filled the cache") {
        for (const auto& address : second.result.addresses) {
            CHECK(portOf(address) == 8080);
        }
    }
    REQUIRE(h.shutdown());
}

TEST_CASE("a cached answer expires after its TTL", "[dns]") {
    DnsConfig config = testConfig();
    config.min_ttl = 50ms;
    config.max_ttl = 50ms;
    Harness h(config);
    Outcome first, second;
    h.resolver->resolve("localhost", 80, into(first));
    REQUIRE(h.runUntil([&] { return first.calls == 1; }));

    h.runFor(80);
    h.resolver->resolve("localhost", 80, into(second));
    REQUIRE(h.runUntil([&] { return second.calls == 1; }));
    CHECK(second.result.ok);
    CHECK_FALSE(second.result.from_cache);
    CHECK(h.resolver->stats().queries == 2);
    REQUIRE(h.shutdown());
}

TEST_CASE("answers from /etc/hosts, which have no TTL, are cached for min_ttl", "[dns]") {
    DnsConfig config = testConfig();
    config.min_ttl = 100ms;
    config.max_ttl = 3600000ms;
    Harness h(config);
    Outcome first, within, after;
    h.resolver->resolve("localhost", 80, into(first));
    REQUIRE(h.runUntil([&] { return first.calls == 1; }));

    h.resolver->resolve("localhost", 80, into(within));
    REQUIRE(h.runUntil([&] { return within.calls == 1; }));
    CHECK(within.result.from_cache);

    h.runFor(150);
    h.resolver->resolve("localhost", 80, into(after));
    REQUIRE(h.runUntil([&] { return after.calls == 1; }));
    CHECK_FALSE(after.result.from_cache);
    REQUIRE(h.shutdown());
}

TEST_CASE("a name that cannot be resolved fails within the timeout, and the failure is cached",
          "[dns]") {
    Harness h;
    Outcome first, second;
    uv_update_time(&h.loop);
    uint64_t started = uv_now(&h.loop);
    h.resolver->resolve(kUnresolvable, 80, into(first));
    REQUIRE(h.runUntil([&] { return first.calls == 1; }, 5000));
    CHECK(uv_now(&h.loop) - started < 3000);
    CHECK_FALSE(first.result.ok);
    CHECK_FALSE(first.result.error.empty());
    CHECK(first.result.addresses.empty());
    CHECK_FALSE(first.result.from_cache);

    h.resolver->resolve(kUnresolvable, 80, into(second));
    REQUIRE(h.runUntil([&] { return second.calls == 1; }));
    CHECK_FALSE(second.result.ok);
    CHECK(second.result.error == first.result.error);
    CHECK(second.result.from_cache);
    CHECK(h.resolver->stats().queries == 1);
    REQUIRE(h.shutdown());
}

TEST_CASE("a cached failure expires after negative_ttl", "[dns]") {
    DnsConfig config = testConfig();
    config.negative_ttl = 50ms;
    Harness h(config);
    Outcome first, second;
    h.resolver->resolve(kUnresolvable, 80, into(first));
    REQUIRE(h.runUntil([&] { return first.calls == 1; }, 5000));

    h.runFor(80);
    h.resolver->resolve(kUnresolvable, 80, into(second));
    REQUIRE(h.runUntil([&] { return second.calls == 1; }, 5000));
    CHECK_FALSE(second.result.ok);
    CHECK_FALSE(second.result.from_cache);
    CHECK(h.resolver->stats().queries == 2);
    REQUIRE(h.shutdown());
}

TEST_CASE("concurrent lookups of the same name share one query", "[dns]") {
    Harness h;
    Outcome a, b;
    // A name that goes to the network, so the first query is still in flight for the second.
    h.resolver->resolve(kUnresolvable, 80, into(a));
    h.resolver->resolve("No-Such-Host.invalid", 443, into(b));
    REQUIRE(h.runUntil([&] { return a.calls == 1 && b.calls == 1; }, 5000));
    CHECK(h.resolver->stats().queries == 1);
    CHECK(h.resolver->stats().coalesced == 1);
    CHECK_FALSE(a.result.ok);
    CHECK_FALSE(b.result.ok);
    CHECK_FALSE(b.result.from_cache);
    REQUIRE(h.shutdown());
}

TEST_CASE("cancel() prevents the callback", "[dns]") {
    Harness h;
    Outcome cancelled, sentinel;
    SECTION("of an answer already queued for delivery") {
        uint64_t id = h.resolver->resolve("127.0.0.1", 80, into(cancelled));
        h.resolver->resolve("127.0.0.2", 80, into(sentinel));
        h.resolver->cancel(id);
    }
    SECTION("of a lookup still in flight") {
        uint64_t id = h.resolver->resolve(kUnresolvable, 80, into(cancelled));
        h.resolver->resolve(kUnresolvable, 80, into(sentinel));
        h.resolver->cancel(id);
    }
    REQUIRE(h.runUntil([&] { return sentinel.calls == 1; }, 5000));
    h.runFor(10);
    CHECK(cancelled.calls == 0);
    REQUIRE(h.shutdown());
}

TEST_CASE("a callback may resolve and cancel re-entrantly", "[dns]") {
    Harness h;
    Outcome nested, sibling;
    uint64_t sibling_id = 0;
    bool first_called = false;
    h.resolver->resolve("127.0.0.1", 80, [&](const DnsResult&) {
        first_called = true;
        h.resolver->cancel(sibling_id); // queued in the same batch as this callback
        h.resolver->resolve("192.0.2.1", 80, into(nested));
        CHECK(nested.calls == 0);
    });
    sibling_id = h.resolver->resolve("127.0.0.2", 80, into(sibling));
    REQUIRE(h.runUntil([&] { return nested.calls == 1; }));
    CHECK(first_called);
    CHECK(sibling.calls == 0);
    REQUIRE(h.shutdown());
}

TEST_CASE("a callback may destroy the object that issued the request", "[dns]") {
    struct Issuer {
        std::string name = "issuer";
        int* answers = nullptr;
    };
    Harness h;
    int answers = 0;
    auto issuer = std::make_unique<Issuer>();
    issuer->answers = &answers;
    Issuer* raw = issuer.get();
    h.resolver->resolve("localhost", 80, [raw, &issuer](const DnsResult&) {
        ++*raw->answers;
        issuer.reset();
    });
    REQUIRE(h.runUntil([&] { return issuer == nullptr; }));
    CHECK(answers == 1);
    REQUIRE(h.shutdown());
}

TEST_CASE("close() drops pending lookups and leaves no handle on the loop", "[dns]") {
    Harness h;
    Outcome delivered, queued, in_flight;
    h.resolver->resolve("127.0.0.1", 80, into(delivered));
    REQUIRE(h.runUntil([&] { return delivered.calls == 1; }));

    // Both pending at close(): one answer waiting for its loop turn, one query whose c-ares
    // socket (and so uv_poll_t) is open.
    h.resolver->resolve("127.0.0.1", 80, into(queued));
    h.resolver->resolve(kUnresolvable, 80, into(in_flight));
    REQUIRE(h.shutdown()); // on_closed ran and uv_loop_close() returned 0
    CHECK(queued.calls == 0);
    CHECK(in_flight.calls == 0);
}

TEST_CASE("close() may be called from inside a callback", "[dns]") {
    Harness h;
    Outcome other;
    bool closed = false;
    h.resolver->resolve("127.0.0.1", 80, [&](const DnsResult&) {
        h.resolver->close([&closed] { closed = true; });
    });
    h.resolver->resolve("127.0.0.2", 80, into(other));
    REQUIRE(h.runUntil([&] { return closed; }));
    CHECK(other.calls == 0);
    CHECK(h.resolver->resolve("127.0.0.3", 80, into(other)) == 0);
    REQUIRE(h.shutdown(true)); // a second close() is a no-op; the loop still closes cleanly
}

TEST_CASE("a Resolver destroyed without close() releases its handles when the loop next runs",
          "[dns]") {
    uv_loop_t loop{};
    uv_loop_init(&loop);
    Outcome outcome;
    {
        Resolver resolver(&loop, testConfig());
        resolver.resolve(kUnresolvable, 80, into(outcome));
        resolver.resolve("127.0.0.1", 80, into(outcome));
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(outcome.calls == 0);
    REQUIRE(uv_loop_close(&loop) == 0);
}
