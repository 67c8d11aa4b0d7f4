// Asynchronous DNS for one event loop: c-ares driven by uv_poll/uv_timer (as
// Node does), never blocking the loop nor libuv's thread pool, with a cache that
// honours record TTLs clamped to [min_ttl, max_ttl] and caches failures for
// negative_ttl.
#pragma once

#include "config/config.h"

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pooled {

struct DnsResult {
    bool ok = false;
    std::string error;                      // e.g. "NXDOMAIN", "timeout" when !ok
    std::vector<sockaddr_storage> addresses; // port already filled in; IPv4 first, then IPv6
    bool from_cache = false;
};

class Resolver {
public:
    using Callback = std::function<void(const DnsResult&)>;

    // Throws std::runtime_error if c-ares cannot be initialised.
    Resolver(uv_loop_t* loop, const DnsConfig& config);
    ~Resolver(); // requires close() to have completed, or the loop never ran handles
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // Resolves host (a name or an IP literal, IPv6 with or without brackets).
    // The callback is never called from inside resolve(): cache hits and literals
    // are delivered on a later loop turn. Returns an id for cancel().
    uint64_t resolve(std::string_view host, uint16_t port, Callback callback);
    // After cancel(id) the callback of that request is never called.
    void cancel(uint64_t id);

    // Closes every libuv handle; on_closed runs once all close callbacks have run.
    void close(std::function<void()> on_closed);

    size_t cacheSize() const;

    // Counters for tests and metrics; they only ever grow.
    struct Stats {
        uint64_t queries = 0;    // c-ares lookups started
        uint64_t cache_hits = 0; // answered (or failed) from the cache
        uint64_t coalesced = 0;  // joined a lookup of the same name already in flight
        uint64_t literals = 0;   // IP literals, answered without c-ares
    };
    Stats stats() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace pooled
