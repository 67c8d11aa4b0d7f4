// Router: a parsed request head -> where it goes (pool key, path, Host to send),
// by absolute-form target, by the listener's bound route, by Host-matched route,
// or by the authority of the CONNECT tunnel the request arrived in.
#pragma once

#include "config/config.h"
#include "http/message.h"
#include "http/proxy_status.h"
#include "http/target.h"
#include "pool/pool_key.h"

#include <optional>
#include <string>

namespace pooled {

struct RouteDecision {
    PoolKey key;
    std::string path;      // origin-form target to send
    std::string authority; // Host header to send
    const RouteConfig* route = nullptr;
};

struct RouteContext {
    const Config& config;
    const RouteConfig* listener_route = nullptr; // sidecar listener
    const Authority* tunnel_authority = nullptr; // plain HTTP inside CONNECT
};

// Returns the decision, or sets `error` and returns nullopt.
std::optional<RouteDecision> routeRequest(const RouteContext& context, const MessageHead& head,
                                          const RequestTarget& target, ProxyError& error);

const RouteConfig* findRoute(const Config& config, const std::string& name);

} // namespace pooled
