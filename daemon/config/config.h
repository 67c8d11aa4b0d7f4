// Typed configuration of the daemon. Produced by config_loader from YAML (or the
// embedded defaults); read-only once a Worker runs with it.
#pragma once

#include "proxy/access_control.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pooled {

using Duration = std::chrono::milliseconds;

// Where a request is sent: scheme, host and port of an origin.
struct UpstreamTarget {
    std::string scheme = "http";
    std::string host;
    uint16_t port = 80;
};

struct ListenerConfig {
    std::string address = "127.0.0.1"; // IPv4 or IPv6 literal
    uint16_t port = 3128;              // 0 = ephemeral (the bound port is logged)
    std::string route;                 // non-empty: origin-form requests go to this route
};

// TLS to one upstream (a route or a tls_origination rule); empty = the global defaults.
struct UpstreamTlsConfig {
    std::string ca_file;      // trust only these CAs instead of tls.ca_file
    std::string client_cert;  // PEM certificate (chain) for mTLS, with client_key
    std::string client_key;
    std::string server_name;  // SNI and the name verified (an IP: no SNI, its IP SAN); default: the host
    bool insecure_skip_verify = false; // explicit only; warned about at start
    bool false_start = true;           // send the request before the origin's Finished (RFC 7918)
    bool operator==(const UpstreamTlsConfig&) const = default;
};

struct RouteConfig {
    std::string name;
    std::vector<std::string> hosts; // Host header patterns: "api.local" or "*.example.com"
    std::string upstream_url;       // as written, e.g. "http://api.internal:8080"
    UpstreamTarget upstream;        // parsed from upstream_url
    UpstreamTlsConfig tls;          // https upstreams only
};

struct TlsConfig {
    std::string ca_file = "/etc/ssl/certs/ca-certificates.crt"; // trust for https upstreams
    std::string min_version = "1.2"; // mbedTLS 2.28 speaks TLS 1.2 only
};

// Absolute-form http:// requests to these hosts go upstream over HTTPS.
struct TlsOriginationRule {
    std::vector<std::string> hosts;                          // patterns, as for routes
    std::vector<std::pair<uint16_t, uint16_t>> ports{{80, 443}}; // request port -> upstream port
    UpstreamTlsConfig tls;
};

struct PoolConfig {
    uint32_t max_connections_per_host = 64;
    // As many as may be open: a burst's connections stay warm for the next one. A lower
    // cap closes connections that are reopened moments later under steady concurrency.
    uint32_t max_idle_per_host = 64;
    uint32_t max_connections_total = 1024;
    uint32_t max_pending = 1024;            // queued requests per host before 503
    uint32_t max_connecting_per_host = 16;  // concurrent connects per host
    Duration queue_timeout{5000};
    Duration idle_timeout{30000};
    uint32_t max_requests_per_connection = 10000; // 0 = unlimited
    Duration max_connection_lifetime{600000};     // 0 = unlimited; jittered by up to 10 %
    Duration keepalive_margin{1000};   // subtracted from an origin's Keep-Alive: timeout=N
    Duration fresh_idle_threshold{2000}; // non-replayable requests prefer connections idle less
};

struct TimeoutConfig {
    Duration connect{5000};
    Duration request_header{10000};      // whole request head must arrive within this
    Duration upstream_first_byte{60000}; // request sent -> response head
    Duration upstream_read{60000};       // gap between response body reads
    Duration client_idle{60000};         // keep-alive client between requests
    Duration tunnel_idle{300000};
    Duration drain{10000};               // SIGTERM: in-flight requests get this long
};

struct LimitsConfig {
    size_t max_request_header_size = 64 * 1024; // -> 431
    uint32_t max_header_count = 100;            // -> 431
    size_t max_uri_length = 8 * 1024;           // -> 414
    size_t max_request_body = 0;                // -> 413; 0 = no limit
    size_t max_response_header_size = 64 * 1024; // -> 502
    uint32_t max_client_connections = 10000;
};

struct BufferConfig {
    size_t read_buffer = 64 * 1024;
    size_t high_water = 256 * 1024; // stop reading the other side above this write queue size
    size_t low_water = 128 * 1024;  // resume below this
    // Sends of one loop turn go to the kernel together through io_uring (one syscall for
    // all of them) where the kernel allows it; false: one write(2) per send.
    bool io_uring = true;
};

struct DnsConfig {
    Duration max_ttl{300000}; // cached answers live min(record TTL, max_ttl)
    Duration min_ttl{1000};
    Duration negative_ttl{2000};
    Duration timeout{5000};
    uint32_t tries = 2;
};

struct AccessLogConfig {
    bool enabled = true;
    std::string format = "json"; // json | text
    std::string output = "stdout"; // stdout | stderr | a file path
};

// The admin endpoint (/healthz, /readyz, /metrics, /pools) on its own listener.
struct AdminConfig {
    bool enabled = false;              // off by default: a second port is opt-in
    std::string address = "127.0.0.1";
    uint16_t port = 9901;              // 0 = ephemeral (the bound port is logged)
};

struct ConnectConfig {
    std::vector<uint16_t> allowed_ports{443, 80};
};

class Credentials;

// Proxy-Authorization: Basic against an htpasswd-style file (crypt(3) hashes).
struct ProxyAuthConfig {
    std::string realm = "pooled";
    std::string credentials_file; // empty: no authentication
    std::shared_ptr<const Credentials> credentials; // read from the file at load time
};

// Who may use the proxy, and which resolved addresses it may connect to.
struct AccessConfig {
    std::vector<Cidr> allow_clients; // empty: loopback only; else exactly these
    // Default: 169.254.0.0/16 and fe80::/10 (link-local: cloud metadata endpoints).
    std::vector<Cidr> deny_destinations = defaultDeniedDestinations();
    std::vector<Cidr> allow_destinations; // exceptions to deny_destinations
    // The name a client asked for, before resolution: "host.example" exactly or
    // "*.example" (any subdomain). allow_hosts makes exceptions to deny_hosts.
    std::vector<std::string> deny_hosts;
    std::vector<std::string> allow_hosts;
    std::vector<uint16_t> allow_ports; // empty: any destination port; else only these
    ProxyAuthConfig proxy_auth;
};

struct Config {
    std::vector<ListenerConfig> listeners{ListenerConfig{}};
    std::vector<RouteConfig> routes;
    PoolConfig pool;
    TimeoutConfig timeouts;
    LimitsConfig limits;
    BufferConfig buffers;
    DnsConfig dns;
    AccessLogConfig access_log;
    ConnectConfig connect;
    TlsConfig tls;
    std::vector<TlsOriginationRule> tls_origination;
    AdminConfig admin;
    AccessConfig access;
    std::string log_level = "info"; // trace debug info warn error critical off
    std::string via_name = "pooled"; // Via: 1.1 <via_name>
};

} // namespace pooled
