// Access control: see access_control.h.
#include "proxy/access_control.h"

#include "config/config.h"
#include "http/target.h"
#include "net/ip_literal.h"

#include <arpa/inet.h> // inet_ntop
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace pooled {

namespace {

// The address as (family, 16 bytes), with IPv4-mapped IPv6 folded to IPv4.
bool normalize(const sockaddr* address, int& family, std::array<uint8_t, 16>& bytes) {
    bytes.fill(0);
    if (address->sa_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
        std::memcpy(bytes.data(), &v4->sin_addr, 4);
        family = AF_INET;
        return true;
    }
    if (address->sa_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
        const auto* raw = reinterpret_cast<const uint8_t*>(&v6->sin6_addr);
        static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(raw, kMapped, sizeof kMapped) == 0) {
            std::memcpy(bytes.data(), raw + 12, 4);
            family = AF_INET;
        } else {
            std::memcpy(bytes.data(), raw, 16);
            family = AF_INET6;
        }
        return true;
    }
    return false;
}

bool prefixMatches(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b,
                   unsigned prefix) {
    const unsigned whole = prefix / 8;
    if (std::memcmp(a.data(), b.data(), whole) != 0)
        return false;
    const unsigned rest = prefix % 8;
    if (rest == 0)
        return true;
    const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

} // namespace

std::optional<Cidr> parseCidr(std::string_view text, std::string& error) {
    Cidr block;
    block.text = std::string(text);
    const size_t slash = text.find('/');
    const std::string_view address = text.substr(0, slash);
    // (no [brackets]: they belong to URL authorities, not to address blocks)
    auto ip = address.empty() || address.front() == '[' ? std::nullopt : parseIpLiteral(address);
    if (ip) {
        std::memcpy(block.bytes.data(), ip->bytes.data(), ip->size);
        block.family = ip->size == 4 ? AF_INET : AF_INET6;
        block.prefix = static_cast<unsigned>(ip->size * 8);
    } else {
        error = "'" + block.text + "' is not an address block (e.g. 10.0.0.0/8 or fd00::/8)";
        return std::nullopt;
    }
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        unsigned prefix = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
            prefix > block.prefix) {
            error = "'" + block.text + "': bad prefix length (0-" +
                    std::to_string(block.prefix) + ")";
            return std::nullopt;
        }
        block.prefix = prefix;
    }
    std::array<uint8_t, 16> network = block.bytes;
    for (unsigned bit = block.prefix; bit < 128; ++bit)
        network[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    if (network != block.bytes) {
        error = "'" + block.text + "' has host bits set below the /" +
                std::to_string(block.prefix) + " prefix";
        return std::nullopt;
    }
    return block;
}

bool cidrContains(const Cidr& block, const sockaddr* address) {
    int family = 0;
    std::array<uint8_t, 16> bytes;
    if (!normalize(address, family, bytes) || family != block.family)
        return false;
    return prefixMatches(bytes, block.bytes, block.prefix);
}

bool anyContains(const std::vector<Cidr>& blocks, const sockaddr* address) {
    for (const auto& block : blocks)
        if (cidrContains(block, address))
            return true;
    return false;
}

bool isLoopback(const sockaddr* address) {
    int family = 0;
    std::array<uint8_t, 16> bytes;
    if (!normalize(address, family, bytes))
        return false;
    if (family == AF_INET)
        return bytes[0] == 127;
    static constexpr std::array<uint8_t, 16> kV6Loopback{0, 0, 0, 0, 0, 0, 0, 0,
                                                         0, 0, 0, 0, 0, 0, 0, 1};
    return bytes == kV6Loopback;
}

bool ipLiteral(const std::string& host, sockaddr_storage& out) {
    out = {};
    auto ip = host.empty() || host.front() == '[' ? std::nullopt : parseIpLiteral(host);
    if (!ip)
        return false;
    if (ip->size == 4) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
        v4->sin_family = AF_INET;
        std::memcpy(&v4->sin_addr, ip->bytes.data(), 4);
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
        v6->sin6_family = AF_INET6;
        std::memcpy(&v6->sin6_addr, ip->bytes.data(), 16);
    }
    return true;
}

bool isLoopbackLiteral(const std::string& address) {
    sockaddr_storage storage{};
    return ipLiteral(address, storage) &&
           isLoopback(reinterpret_cast<const sockaddr*>(&storage));
}

std::vector<Cidr> defaultDeniedDestinations() {
    std::vector<Cidr> blocks;
    std::string error;
    for (const char* text : {"169.254.0.0/16", "fe80::/10"})
        blocks.push_back(*parseCidr(text, error));
    return blocks;
}

bool clientAllowed(const AccessConfig& access, const sockaddr* address) {
    if (access.allow_clients.empty())
        return isLoopback(address);
    return anyContains(access.allow_clients, address);
}

bool destinationAllowed(const AccessConfig& access, const sockaddr* address) {
    return !anyContains(access.deny_destinations, address) ||
           anyContains(access.allow_destinations, address);
}

bool validHostPattern(std::string_view pattern, std::string& error) {
    std::string_view name = pattern;
    if (name.substr(0, 2) == "*.")
        name.remove_prefix(2);
    bool ok = !name.empty() && name.front() != '.' && name.back() != '.';
    for (char c : name)
        ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
                    c == ':'); // ':' for IPv6 literals
    if (!ok)
        error = "'" + std::string(pattern) +
                "' is not a host name or a \"*.domain\" pattern";
    return ok;
}

std::string destinationNameDenied(const AccessConfig& access, std::string_view host,
                                  uint16_t port) {
    if (!host.empty() && host.back() == '.')
        host.remove_suffix(1); // "a.example." names "a.example": no way around a rule
    auto any = [&](const std::vector<std::string>& patterns) {
        for (const auto& pattern : patterns)
            if (hostMatches(pattern, host))
                return true;
        return false;
    };
    if (any(access.deny_hosts) && !any(access.allow_hosts))
        return "host " + std::string(host) + " is not allowed";
    if (!access.allow_ports.empty() &&
        std::find(access.allow_ports.begin(), access.allow_ports.end(), port) ==
            access.allow_ports.end())
        return "port " + std::to_string(port) + " is not allowed";
    return {};
}

std::string addressText(const sockaddr* address) {
    char text[INET6_ADDRSTRLEN] = "";
    if (address->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text,
                  sizeof text);
    else if (address->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text,
                  sizeof text);
    return text;
}

} // namespace pooled
