// Who may use the proxy and where it may connect: CIDR blocks (IPv4 and IPv6), the
// client allow-list checked when a connection is accepted, and the destination rules
// checked on every resolved address before a connect (so a name that resolves to a
// forbidden address is caught as surely as an IP literal).
#pragma once

#include <sys/socket.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pooled {

struct AccessConfig;

// An address block such as 10.0.0.0/8 or fe80::/10. A bare address is a /32 or /128.
struct Cidr {
    int family = 0;                  // AF_INET or AF_INET6
    std::array<uint8_t, 16> bytes{}; // network order; IPv4 uses the first 4
    unsigned prefix = 0;
    std::string text; // as written, for messages
    bool operator==(const Cidr& other) const {
        return family == other.family && bytes == other.bytes && prefix == other.prefix;
    }
};

// Parses "a.b.c.d/n", "x::y/n" or a bare address. Host bits set below the prefix are an
// error (10.0.0.1/8 is almost always a typo); nullopt with `error` set on failure.
std::optional<Cidr> parseCidr(std::string_view text, std::string& error);

// Whether `address` (sockaddr_in or sockaddr_in6) is inside `block`. IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d, what a dual-stack socket reports) match as IPv4.
bool cidrContains(const Cidr& block, const sockaddr* address);
bool anyContains(const std::vector<Cidr>& blocks, const sockaddr* address);

// Fills `out` (port 0) if `host` is an IPv4 or IPv6 literal (unbracketed).
bool ipLiteral(const std::string& host, sockaddr_storage& out);

// 127.0.0.0/8 or ::1 (also IPv4-mapped).
bool isLoopback(const sockaddr* address);
// The same for an address literal as written in a listener; false if it is not one.
bool isLoopbackLiteral(const std::string& address);

// 169.254.0.0/16 and fe80::/10: link-local, where cloud metadata services answer.
std::vector<Cidr> defaultDeniedDestinations();

// allow_clients empty: loopback only; otherwise exactly the listed blocks.
bool clientAllowed(const AccessConfig& access, const sockaddr* address);
// Denied if inside deny_destinations and not inside allow_destinations.
bool destinationAllowed(const AccessConfig& access, const sockaddr* address);

// A host rule: letters, digits, '-', '.', optionally starting with "*." (subdomains of
// what follows, at any depth, not the name itself). IP literals may be written too.
bool validHostPattern(std::string_view pattern, std::string& error);
// The requested name and port, checked before any lookup or connect: deny_hosts unless
// allow_hosts (hostMatches; one trailing dot of `host` ignored), and allow_ports when
// it is set. Empty when allowed, else why not.
std::string destinationNameDenied(const AccessConfig& access, std::string_view host,
                                  uint16_t port);

// "10.1.2.3" / "fe80::1" for messages.
std::string addressText(const sockaddr* address);

} // namespace pooled
