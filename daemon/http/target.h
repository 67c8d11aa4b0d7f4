// Request-target forms (RFC 9112 3.2): origin-form "/p?q", absolute-form
// "http://host:port/p", authority-form "host:port" (CONNECT), asterisk "*".
#pragma once

#include "http/message.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pooled {

struct Authority {
    std::string host; // lower-cased; IPv6 without brackets
    uint16_t port = 0;
    bool ipv6 = false;
    // "host:port" as sent in Host / CONNECT (brackets restored for IPv6).
    std::string toString(bool with_default_port_of = false, uint16_t default_port = 0) const;
};

struct RequestTarget {
    enum class Form { Origin, Absolute, Authority, Asterisk };
    Form form = Form::Origin;
    std::string scheme; // "http" / "https" for absolute-form
    Authority authority;
    std::string path; // origin-form to send upstream: path + query, never empty
};

// Parses "host", "host:port", "[v6]:port". Rejects userinfo, empty hosts, bad ports
// and characters outside a host name. default_port applies when no port is given.
std::optional<Authority> parseAuthority(std::string_view text, uint16_t default_port);

// Parses a request target for the given method. nullopt = 400.
std::optional<RequestTarget> parseRequestTarget(std::string_view method, std::string_view target);

// RFC 9112 3.2: one Host header with a valid authority; required in HTTP/1.1 except
// for CONNECT, whose target is the authority. nullptr when fine, else why not (400).
const char* hostHeaderProblem(const MessageHead& request);

// Host header pattern: "api.local" exact, "*.example.com" any sub-domain.
bool hostMatches(std::string_view pattern, std::string_view host);

} // namespace pooled
