// One finished request as the access log sees it. Filled along the request's
// path by the client session; written once the request ends.
#pragma once

#include <cstdint>
#include <string>

namespace pooled {

struct RequestRecord {
    int64_t start_unix_us = 0; // wall-clock start (first byte of the request head)
    std::string client;        // "127.0.0.1:51234"
    std::string method;
    std::string scheme;        // http | https | tunnel
    std::string host;
    uint16_t port = 0;
    std::string path;          // origin-form target sent upstream
    std::string route;         // route name, empty for forward-proxy requests
    int status = 0;            // status sent to the client, 0 if none
    uint64_t bytes_in = 0;     // request body bytes from the client
    uint64_t bytes_out = 0;    // response body bytes to the client
    // Durations in microseconds; -1 = did not happen (e.g. connect on a reused connection).
    int64_t total_us = -1;
    int64_t pool_wait_us = -1; // request ready -> connection assigned
    int64_t dns_us = -1;
    int64_t connect_us = -1;
    int64_t tls_us = -1;       // handshake of a new https connection; 0 when reused
    bool tls_resumed = false;  // that handshake resumed a saved session (no certificates)
    int64_t ttfb_us = -1;      // request head written -> response head parsed
    bool reused = false;
    uint64_t upstream_conn_id = 0;
    uint32_t upstream_conn_requests = 0; // requests served by that connection, this one included
    uint32_t retries = 0;
    std::string error;  // RFC 9209 error token (Proxy-Status), empty when none
    std::string detail; // short human detail for the error
};

} // namespace pooled
