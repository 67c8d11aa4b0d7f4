// Naming TLS settings and choosing them for a request: a profile id is the canonical
// text of an UpstreamTlsConfig, so it can sit in a PoolKey (connections with different
// trust or client certificates never share a pool) and name its mbedtls_ssl_config.
#pragma once

#include "config/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pooled {

// "" for the defaults (system CA bundle, verification on, SNI = host).
std::string tlsProfileId(const UpstreamTlsConfig& settings);

// An absolute-form http:// request that a tls_origination rule upgrades to HTTPS.
struct TlsOrigination {
    uint16_t port = 0; // upstream port after the rule's port mapping
    const TlsOriginationRule* rule = nullptr;
};

// The first rule whose hosts match `host`, or nullopt.
std::optional<TlsOrigination> findTlsOrigination(const Config& config, std::string_view host,
                                                 uint16_t port);

} // namespace pooled
