// Metrics: see metrics.h. Names follow Prometheus conventions (base units, counters
// end in _total) so that `promtool check metrics` has nothing to say.
#include "observe/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace pooled {

namespace {

// Request durations: a local proxy answers in well under a millisecond when warm, and
// an origin can take a minute; exponential bounds cover both ends.
std::vector<double> requestBounds() {
    return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

// Pool waits and connects are usually tiny (a warm idle connection, a LAN handshake).
std::vector<double> setupBounds() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
            1, 2.5, 5};
}

// The shortest text that reads back as the same double: "0.0005", not "0.00050000000000000001".
std::string number(double value) {
    char text[64];
    if (value == std::floor(value) && std::fabs(value) < 1e15) {
        std::snprintf(text, sizeof text, "%.0f", value); // "60", not "6e+01"
        return text;
    }
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(text, sizeof text, "%.*g", precision, value);
        if (std::strtod(text, nullptr) == value)
            break;
    }
    return text;
}

class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}

    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // labels: already rendered `a="x",b="y"`, or empty.
    void sample(std::string_view name, std::string_view labels, uint64_t value) {
        line(name, labels, std::to_string(value));
    }
    void sample(std::string_view name, std::string_view labels, double value) {
        line(name, labels, number(value));
    }

    // A family of one unlabelled sample.
    void single(std::string_view name, std::string_view type, std::string_view help,
                uint64_t value) {
        family(name, type, help);
        sample(name, "", value);
    }

    void histogram(std::string_view name, std::string_view help, const Histogram& h) {
        family(name, "histogram", help);
        uint64_t cumulative = 0;
        const std::string bucket = std::string(name) + "_bucket";
        for (size_t i = 0; i < h.bounds().size(); ++i) {
            cumulative += h.counts()[i];
            line(bucket, "le=\"" + number(h.bounds()[i]) + "\"", std::to_string(cumulative));
        }
        line(bucket, "le=\"+Inf\"", std::to_string(h.count()));
        line(std::string(name) + "_sum", "", number(h.sum()));
        line(std::string(name) + "_count", "", std::to_string(h.count()));
    }

private:
    void line(std::string_view name, std::string_view labels, const std::string& value) {
        out_ += name;
        if (!labels.empty()) {
            out_ += '{';
            out_ += labels;
            out_ += '}';
        }
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }

    std::string& out_;
};

std::string label(std::string_view name, std::string_view value) {
    return std::string(name) + "=\"" + escapeLabelValue(value) + "\"";
}

uint32_t weight(const PoolGauge& p) {
    return p.active + p.idle + p.connecting + p.pending;
}

} // namespace

std::string escapeLabelValue(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double seconds) {
    auto it = std::lower_bound(bounds_.begin(), bounds_.end(), seconds);
    counts_[static_cast<size_t>(it - bounds_.begin())]++;
    count_++;
    sum_ += seconds;
}

void LabeledCounter::add(std::string_view label, uint64_t n) {
    auto it = values_.find(label);
    if (it == values_.end()) {
        // Bounded cardinality: a new value past the limit joins "other".
        const std::string key = values_.size() < limit_ ? std::string(label) : "other";
        it = values_.emplace(key, 0).first;
    }
    it->second += n;
}

uint64_t LabeledCounter::get(std::string_view label) const {
    auto it = values_.find(label);
    return it == values_.end() ? 0 : it->second;
}

Metrics::Metrics()
    : request_duration(requestBounds()), pool_wait(setupBounds()),
      upstream_connect(setupBounds()), upstream_tls(setupBounds()) {}

void Metrics::onRequest(const RequestRecord& record, int64_t total_us) {
    const int status_class = record.status >= 100 && record.status < 600 ? record.status / 100 : 0;
    requests_by_class[static_cast<size_t>(status_class)]++;
    if (!record.error.empty())
        request_errors.add(record.error);
    bytes_in += record.bytes_in;
    bytes_out += record.bytes_out;
    if (record.reused)
        upstream_reused++;
    if (total_us >= 0)
        request_duration.observe(static_cast<double>(total_us) / 1e6);
    if (record.pool_wait_us >= 0)
        pool_wait.observe(static_cast<double>(record.pool_wait_us) / 1e6);
    if (record.connect_us >= 0)
        upstream_connect.observe(static_cast<double>(record.connect_us) / 1e6);
    // A new https connection's first request carries its handshake (a reused one has 0).
    if (!record.reused && record.tls_us >= 0) {
        upstream_tls.observe(static_cast<double>(record.tls_us) / 1e6);
        ++(record.tls_resumed ? tls_resumed : tls_full);
    }
}

std::string Metrics::render(const LiveGauges& live, size_t top_hosts) const {
    std::string out;
    out.reserve(8192);
    Writer w(out);

    w.family("pooled_build_info", "gauge", "Version of the running pooled.");
    w.sample("pooled_build_info", label("version", POOLED_VERSION), uint64_t{1});
    w.single("pooled_ready", "gauge", "1 while listening and not draining.",
             uint64_t{live.ready ? 1u : 0u});

    w.single("pooled_client_connections", "gauge", "Client connections open now.",
             live.client_connections);
    w.single("pooled_client_connections_accepted_total", "counter",
             "Client connections accepted.", live.client_connections_total);
    w.single("pooled_io_uring", "gauge",
             "1 when sends are batched through io_uring, 0 when each is a write(2).",
             uint64_t{live.io_uring ? 1u : 0u});
    w.single("pooled_sends_total", "counter", "Sends submitted through io_uring.", live.sends);
    w.single("pooled_send_batches_total", "counter",
             "io_uring submits that carried sends: sends per batch = syscalls saved.",
             live.send_batches);

    w.family("pooled_requests_total", "counter", "Requests ended, by response status class.");
    static const char* const kClasses[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (size_t i = 0; i < requests_by_class.size(); ++i)
        w.sample("pooled_requests_total", label("code", kClasses[i]), requests_by_class[i]);
    w.family("pooled_request_errors_total", "counter",
             "Requests that failed, by Proxy-Status error type (RFC 9209).");
    for (const auto& [token, n] : request_errors.values())
        w.sample("pooled_request_errors_total", label("error", token), n);

    w.histogram("pooled_request_duration_seconds",
                "First byte of the request head to the end of the response.", request_duration);
    w.histogram("pooled_pool_wait_seconds",
                "Request ready to upstream connection assigned (queue and connect).", pool_wait);
    w.histogram("pooled_upstream_connect_seconds", "TCP connect time of new upstream connections.",
                upstream_connect);
    w.histogram("pooled_upstream_tls_handshake_seconds",
                "TLS handshake of new upstream connections, until the request could go.",
                upstream_tls);
    w.family("pooled_upstream_tls_handshakes_total", "counter",
             "TLS handshakes of new upstream connections: full, or resumed from a saved session.");
    w.sample("pooled_upstream_tls_handshakes_total", label("kind", "full"), tls_full);
    w.sample("pooled_upstream_tls_handshakes_total", label("kind", "resumed"), tls_resumed);

    w.family("pooled_denied_total", "counter",
             "Clients and requests turned away by access rules and limits, by reason.");
    for (const auto& [reason, n] : denials.values())
        w.sample("pooled_denied_total", label("reason", reason), n);
    w.single("pooled_request_body_bytes_total", "counter", "Request body bytes from clients.",
             bytes_in);
    w.single("pooled_response_body_bytes_total", "counter", "Response body bytes to clients.",
             bytes_out);

    PoolGauge total;
    for (const auto& p : live.pools) {
        total.active += p.active;
        total.idle += p.idle;
        total.connecting += p.connecting;
        total.pending += p.pending;
    }
    w.family("pooled_upstream_connections", "gauge", "Upstream connections open now, by state.");
    w.sample("pooled_upstream_connections", label("state", "active"), uint64_t{total.active});
    w.sample("pooled_upstream_connections", label("state", "idle"), uint64_t{total.idle});
    w.sample("pooled_upstream_connections", label("state", "connecting"),
             uint64_t{total.connecting});
    w.single("pooled_upstream_connections_created_total", "counter",
             "Upstream connections opened.", upstream_created);
    w.single("pooled_upstream_connections_reused_total", "counter",
             "Requests served on a reused upstream connection.", upstream_reused);
    w.family("pooled_upstream_connections_closed_total", "counter",
             "Upstream connections closed, by cause.");
    for (const auto& [cause, n] : upstream_closed.values())
        w.sample("pooled_upstream_connections_closed_total", label("cause", cause), n);

    // Per-host series: the busiest `top_hosts` by name, the rest summed as "other", so a
    // forward proxy that reaches thousands of hosts still exports a bounded set.
    std::vector<const PoolGauge*> pools;
    for (const auto& p : live.pools)
        pools.push_back(&p);
    std::stable_sort(pools.begin(), pools.end(), [](const PoolGauge* a, const PoolGauge* b) {
        return weight(*a) != weight(*b) ? weight(*a) > weight(*b) : a->host < b->host;
    });
    std::vector<PoolGauge> shown;
    PoolGauge other;
    other.host = "other";
    for (size_t i = 0; i < pools.size(); ++i) {
        if (i < top_hosts) {
            shown.push_back(*pools[i]);
            continue;
        }
        other.active += pools[i]->active;
        other.idle += pools[i]->idle;
        other.connecting += pools[i]->connecting;
        other.pending += pools[i]->pending;
    }
    if (pools.size() > top_hosts)
        shown.push_back(other);
    w.family("pooled_pool_connections", "gauge",
             "Upstream connections per pool (top hosts, the rest as pool=\"other\").");
    for (const auto& p : shown) {
        const std::string host = label("pool", p.host);
        w.sample("pooled_pool_connections", host + "," + label("state", "active"),
                 uint64_t{p.active});
        w.sample("pooled_pool_connections", host + "," + label("state", "idle"), uint64_t{p.idle});
        w.sample("pooled_pool_connections", host + "," + label("state", "connecting"),
                 uint64_t{p.connecting});
    }
    w.family("pooled_pool_pending_requests", "gauge",
             "Requests queued for a connection per pool (top hosts, the rest as \"other\").");
    for (const auto& p : shown)
        w.sample("pooled_pool_pending_requests", label("pool", p.host), uint64_t{p.pending});

    w.family("pooled_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.");
    w.sample("pooled_config_reloads_total", label("result", "success"), reloads_ok);
    w.sample("pooled_config_reloads_total", label("result", "failure"), reloads_failed);
    return out;
}

} // namespace pooled
