// Request-target parsing: see target.h.
#include "http/target.h"

#include <charconv>

namespace pooled {

namespace {

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool isHostChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

bool isIpv6Char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
           c == ':' || c == '.';
}

std::optional<uint16_t> parsePort(std::string_view text) {
    if (text.empty() || text.size() > 5)
        return std::nullopt;
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr != text.data() + text.size() || value == 0 || value > 65535)
        return std::nullopt;
    return static_cast<uint16_t>(value);
}

} // namespace

std::string Authority::toString(bool omit_default, uint16_t default_port) const {
    std::string out = ipv6 ? "[" + host + "]" : host;
    if (!(omit_default && port == default_port)) {
        out.push_back(':');
        out.append(std::to_string(port));
    }
    return out;
}

std::optional<Authority> parseAuthority(std::string_view text, uint16_t default_port) {
    if (text.empty() || text.find('@') != std::string_view::npos)
        return std::nullopt; // userinfo is never accepted (credential leaks, confusion)
    Authority a;
    std::string_view host;
    std::string_view port_text;
    if (text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close == 1)
            return std::nullopt;
        host = text.substr(1, close - 1);
        for (char c : host)
            if (!isIpv6Char(c))
                return std::nullopt;
        a.ipv6 = true;
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':')
                return std::nullopt;
            port_text = rest.substr(1);
            if (port_text.empty())
                return std::nullopt;
        }
    } else {
        size_t colon = text.rfind(':');
        host = text.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = text.substr(colon + 1);
            if (port_text.empty())
                return std::nullopt;
        }
        if (host.empty() || host.size() > 253)
            return std::nullopt;
        for (char c : host)
            if (!isHostChar(c))
                return std::nullopt;
    }
    if (!port_text.empty()) {
        auto port = parsePort(port_text);
        if (!port)
            return std::nullopt;
        a.port = *port;
    } else {
        if (default_port == 0)
            return std::nullopt;
        a.port = default_port;
    }
    a.host.reserve(host.size());
    for (char c : host)
        a.host.push_back(lower(c));
    return a;
}

std::optional<RequestTarget> parseRequestTarget(std::string_view method, std::string_view target) {
    RequestTarget t;
    if (method == "CONNECT") {
        auto authority = parseAuthority(target, 0); // CONNECT needs an explicit port
        if (!authority)
            return std::nullopt;
        t.form = RequestTarget::Form::Authority;
        t.authority = *authority;
        return t;
    }
    if (target == "*") {
        if (method != "OPTIONS")
            return std::nullopt;
        t.form = RequestTarget::Form::Asterisk;
        t.path = "*";
        return t;
    }
    if (!target.empty() && target.front() == '/') {
        t.form = RequestTarget::Form::Origin;
        t.path = std::string(target.substr(0, target.find('#'))); // a fragment is the client's
        return t;
    }
    size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos)
        return std::nullopt;
    std::string scheme;
    for (char c : target.substr(0, scheme_end))
        scheme.push_back(lower(c));
    if (scheme != "http" && scheme != "https")
        return std::nullopt;
    auto rest = target.substr(scheme_end + 3);
    size_t path_start = rest.find_first_of("/?#");
    auto authority_text = rest.substr(0, path_start);
    auto authority = parseAuthority(authority_text, scheme == "https" ? 443 : 80);
    if (!authority)
        return std::nullopt;
    t.form = RequestTarget::Form::Absolute;
    t.scheme = std::move(scheme);
    t.authority = std::move(*authority);
    if (path_start == std::string_view::npos) {
        t.path = "/";
    } else {
        auto path = rest.substr(path_start);
        size_t fragment = path.find('#');
        path = path.substr(0, fragment);
        t.path = path.empty() || path.front() != '/' ? "/" + std::string(path) : std::string(path);
    }
    return t;
}

const char* hostHeaderProblem(const MessageHead& request) {
    const Header* host = nullptr;
    for (const auto& h : request.headers) {
        if (!equalsIgnoreCase(h.name, "host"))
            continue;
        if (host)
            return "more than one Host header"; // which one would the next hop use?
        host = &h;
    }
    if (!host)
        return request.isHttp10() || request.method == "CONNECT" ? nullptr
                                                                  : "HTTP/1.1 request without Host";
    if (!parseAuthority(host->value, 80))
        return "invalid Host header";
    return nullptr;
}

bool hostMatches(std::string_view pattern, std::string_view host) {
    if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
        auto suffix = pattern.substr(1); // ".example.com"
        if (host.size() <= suffix.size())
            return false;
        auto tail = host.substr(host.size() - suffix.size());
        for (size_t i = 0; i < suffix.size(); ++i)
            if (lower(tail[i]) != lower(suffix[i]))
                return false;
        return true;
    }
    if (pattern.size() != host.size())
        return false;
    for (size_t i = 0; i < host.size(); ++i)
        if (lower(pattern[i]) != lower(host[i]))
            return false;
    return true;
}

} // namespace pooled
