// Whether a connection a request is done with goes back to the idle list, and if not, why:
// one ladder (nginx's free_keepalive_peer) that gives the decision and its metric label
// together, so the pool and the closed-connections metric can never disagree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pooled {

// What release() knows about a connection and its pool when a request lets go of it.
struct ReuseFacts {
    bool request_done = false;          // the request was sent whole and its response read whole
    bool response_allows_reuse = false; // framing clean, no Connection: close, no bytes after it
    bool draining = false;              // the worker is shutting down
    int64_t idle_timeout_ms = 0;        // what the connection would get idle (learned or set)
    uint32_t requests = 0;              // carried so far, this one included
    uint32_t max_requests = 0;          // 0 = unlimited
    int64_t now_us = 0;
    int64_t expires_us = 0;             // 0 = no lifetime limit
    size_t idle = 0;                    // idle connections of this pool now
    size_t max_idle = 0;
    size_t waiters = 0;                 // requests queued for this pool
    bool others_starved = false;        // another pool waits for a max_connections_total slot
};

struct ReuseVerdict {
    bool keep = false;
    // Why not kept: the pooled_upstream_connections_closed_total label; empty when kept.
    std::string_view cause;
};

ReuseVerdict reuseVerdict(const ReuseFacts& facts);

} // namespace pooled
