// Counters and histograms of one Worker, rendered in the Prometheus text format
// (version 0.0.4). Events bump counters where they happen (a request ends, an
// upstream connection opens or closes); gauges (open connections, per-host pool
// state) are read from the live objects at scrape time, so they can never drift.
#pragma once

#include "observe/request_record.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace pooled {

// A cumulative histogram with fixed upper bounds in seconds.
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double seconds);
    const std::vector<double>& bounds() const { return bounds_; }
    // counts()[i]: observations <= bounds()[i] (not cumulative); the last slot is +Inf.
    const std::vector<uint64_t>& counts() const { return counts_; }
    uint64_t count() const { return count_; }
    double sum() const { return sum_; }

private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;
    uint64_t count_ = 0;
    double sum_ = 0;
};

// Label values that come from the outside world (error tokens, close causes) are
// counted in a bounded map: past `limit` distinct values the rest share "other".
class LabeledCounter {
public:
    explicit LabeledCounter(size_t limit) : limit_(limit) {}
    void add(std::string_view label, uint64_t n = 1);
    const std::map<std::string, uint64_t, std::less<>>& values() const { return values_; }
    uint64_t get(std::string_view label) const;

private:
    size_t limit_;
    std::map<std::string, uint64_t, std::less<>> values_;
};

// The live state read at scrape time.
struct PoolGauge {
    std::string host; // PoolKey::toString()
    uint32_t active = 0;
    uint32_t idle = 0;
    uint32_t connecting = 0;
    uint32_t pending = 0;
};

struct LiveGauges {
    uint64_t client_connections = 0;
    uint64_t client_connections_total = 0; // accepted since start
    bool ready = false;
    bool io_uring = false;     // sends batched through io_uring
    uint64_t sends = 0;        // ... sendmsg operations so far
    uint64_t send_batches = 0; // ... and the submits that carried them
    std::vector<PoolGauge> pools; // every pool; the renderer bounds the host labels
};

struct Metrics {
    Metrics();

    // A request ended (the access-log point). Counts status class, error token,
    // bytes and durations; a request on a reused connection counts as a reuse.
    // `total_us` is passed apart: the record's own total is only filled for the log.
    void onRequest(const RequestRecord& record, int64_t total_us);
    void onUpstreamCreated() { upstream_created++; }
    // cause: a ProxyError token, or idle_timeout, max_requests, lifetime, origin_closed…
    void onUpstreamClosed(std::string_view cause) { upstream_closed.add(cause); }
    void onReload(bool ok) { (ok ? reloads_ok : reloads_failed)++; }
    // A client or request turned away by policy: client_not_allowed, client_limit,
    // proxy_auth, connect_port, destination. Counted apart from request errors because
    // refused connections never become requests, and a rising count is worth an alert.
    void onDenied(std::string_view reason) { denials.add(reason); }

    // The whole exposition. `top_hosts` bounds the per-host series: the busiest
    // hosts keep their own label, the rest are summed into host="other".
    std::string render(const LiveGauges& live, size_t top_hosts = 20) const;

    std::array<uint64_t, 6> requests_by_class{}; // [0] = no status sent, [1..5] = 1xx..5xx
    LabeledCounter request_errors{64};
    LabeledCounter upstream_closed{64};
    LabeledCounter denials{16};
    uint64_t upstream_created = 0;
    uint64_t upstream_reused = 0;
    uint64_t tls_full = 0;    // upstream TLS handshakes that exchanged certificates
    uint64_t tls_resumed = 0; // ... and those that resumed a saved session
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t reloads_ok = 0;
    uint64_t reloads_failed = 0;
    Histogram request_duration;
    Histogram pool_wait;
    Histogram upstream_connect;
    Histogram upstream_tls;
};

// Label value escaping of the text format: backslash, double quote and newline.
std::string escapeLabelValue(std::string_view value);

} // namespace pooled
