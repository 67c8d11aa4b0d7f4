// What the pool hands a request: one request/response slot on an upstream connection. An
// HTTP/1 connection has exactly one (the pool gives it to one request at a time); a
// multiplexed codec would hand out several per connection behind this same interface. A
// request holds its stream from checkout until it releases or discards it through the pool.
// The stream knows how its connection was set up as this request saw it, and answers the
// replay question.
#pragma once

#include "pool/upstream_events.h"

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace pooled {

class UpstreamConnection;

// The connection's setup, as the access log reports it for this request.
struct StreamSetup {
    bool reused = false;         // the connection carried requests before this one
    int64_t dns_us = -1;         // -1: not paid by this request (reused), or not measured
    int64_t connect_us = -1;
    int64_t tls_us = -1;         // -1 for plain http; 0 on a reused https connection
    bool tls_resumed = false;    // a new https connection resumed a saved session
    uint64_t connection_id = 0;
    uint32_t connection_requests = 0; // carried so far, this one included
};

class PoolStream {
public:
    PoolStream() = default;
    explicit PoolStream(UpstreamConnection& connection) : connection_(&connection) {}
    explicit operator bool() const { return connection_ != nullptr; }
    bool operator==(const UpstreamConnection& c) const { return connection_ == &c; }

    // The request begins: its events go to `events`, its response is expected now.
    void begin(UpstreamEvents& events, bool head_request);
    // Valid once begun.
    StreamSetup setup() const;
    // Request bytes, in order; false if the connection refused them (an error event follows
    // on a later turn).
    bool write(std::initializer_list<std::string_view> parts);
    // Request bytes not yet taken by the socket: what upload backpressure is about.
    size_t queued() const;
    // The request went out whole: the origin's first-byte deadline starts.
    void requestSent();
    // The client cannot take more response bytes now / again.
    void pauseResponse();
    void resumeResponse();
    // After a failure: nothing of the response arrived and the connection had waited in the
    // pool, where the origin may have closed it unseen (the stale keep-alive race). Such a
    // request may be replayed once on a fresh connection, if it is itself safe to repeat.
    bool failedAsStale() const;

    // For the pool (release, discard, detach) and tunnels.
    UpstreamConnection& connection() const { return *connection_; }

private:
    UpstreamConnection* connection_ = nullptr;
};

} // namespace pooled
