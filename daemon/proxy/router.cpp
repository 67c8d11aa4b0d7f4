// Router: see router.h.
#include "proxy/router.h"

#include "tls/tls_profile.h"

namespace pooled {

namespace {

std::string authorityOf(const std::string& host, uint16_t port, uint16_t default_port) {
    bool v6 = host.find(':') != std::string::npos;
    std::string out = v6 ? "[" + host + "]" : host;
    if (port != default_port)
        out += ":" + std::to_string(port);
    return out;
}

RouteDecision toUpstream(const RouteConfig& route, std::string path, std::string authority) {
    RouteDecision d;
    d.key = {route.upstream.scheme, route.upstream.host, route.upstream.port,
             route.upstream.scheme == "https" ? tlsProfileId(route.tls) : ""};
    d.path = std::move(path);
    d.authority = authority.empty()
                      ? authorityOf(route.upstream.host, route.upstream.port,
                                    route.upstream.scheme == "https" ? 443 : 80)
                      : std::move(authority);
    d.route = &route;
    return d;
}

} // namespace

const RouteConfig* findRoute(const Config& config, const std::string& name) {
    for (const auto& r : config.routes)
        if (r.name == name)
            return &r;
    return nullptr;
}

std::optional<RouteDecision> routeRequest(const RouteContext& context, const MessageHead& head,
                                          const RequestTarget& target, ProxyError& error) {
    if (target.form == RequestTarget::Form::Absolute) {
        RouteDecision d;
        d.key = {target.scheme, target.authority.host, target.authority.port};
        d.path = target.path;
        uint16_t default_port = target.scheme == "https" ? 443 : 80;
        // tls_origination: the app speaks plain HTTP to us, the origin gets HTTPS.
        if (target.scheme == "http") {
            if (auto o = findTlsOrigination(context.config, target.authority.host,
                                            target.authority.port)) {
                d.key = {"https", target.authority.host, o->port, tlsProfileId(o->rule->tls)};
                default_port = 443;
            }
        }
        d.authority = authorityOf(d.key.host, d.key.port, default_port);
        return d;
    }
    if (context.listener_route)
        return toUpstream(*context.listener_route, target.path, "");
    if (context.tunnel_authority) {
        RouteDecision d;
        d.key = {"http", context.tunnel_authority->host, context.tunnel_authority->port};
        d.path = target.path;
        const Header* host = head.find("host");
        d.authority = host ? host->value
                           : authorityOf(context.tunnel_authority->host,
                                         context.tunnel_authority->port, 80);
        return d;
    }
    const Header* host_header = head.find("host");
    if (!host_header) {
        error = {400, "http_request_error", "origin-form request without Host"};
        return std::nullopt;
    }
    auto host = parseAuthority(host_header->value, 80);
    if (!host) {
        error = {400, "http_request_error", "invalid Host header"};
        return std::nullopt;
    }
    for (const auto& route : context.config.routes)
        for (const auto& pattern : route.hosts)
            if (hostMatches(pattern, host->host))
                return toUpstream(route, target.path, host_header->value);
    error = {502, "destination_not_found", "no route for host " + host->host};
    return std::nullopt;
}

} // namespace pooled
