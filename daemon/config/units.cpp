// Text -> value conversions used by the config loader: durations, sizes, upstream URLs and
// listen addresses. Each throws std::invalid_argument with a message fit to show a user; the
// loader adds the file, key, line and column.
#include "config/config_loader.h"
#include "net/ip_literal.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace pooled {

namespace {

// Splits "123abc" into 123 and "abc". Only plain decimal digits: no sign, no spaces, no
// fractions, so "1.5s" or "-1" are errors rather than surprises.
bool splitNumber(std::string_view text, uint64_t& number, std::string_view& unit) {
    const char* begin = text.data();
    const char* end = text.data() + text.size();
    if (begin == end || *begin < '0' || *begin > '9')
        return false;
    auto [ptr, ec] = std::from_chars(begin, end, number);
    if (ec == std::errc::result_out_of_range)
        throw std::invalid_argument("number too large: '" + std::string(text) + "'");
    if (ec != std::errc())
        return false;
    unit = std::string_view(ptr, static_cast<size_t>(end - ptr));
    return true;
}

bool isDigits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Port text -> number; `allowZero` because listeners may ask for an ephemeral port while an
// upstream never can.
uint16_t parsePort(std::string_view text, bool allowZero, const std::string& what) {
    uint64_t port = 0;
    std::string_view rest;
    if (!isDigits(text) || !splitNumber(text, port, rest) || !rest.empty())
        throw std::invalid_argument("bad port '" + std::string(text) + "' in '" + what + "'");
    const uint64_t min = allowZero ? 0 : 1;
    if (port < min || port > 65535)
        throw std::invalid_argument("port " + std::string(text) + " out of range (" +
                                    std::to_string(min) + "..65535) in '" + what + "'");
    return static_cast<uint16_t>(port);
}

bool isIPv4(const std::string& s) {
    auto ip = parseIpLiteral(s);
    return ip && ip->size == 4;
}

bool isIPv6(const std::string& s) {
    auto ip = parseIpLiteral(s);
    return ip && ip->size == 16 && s.front() != '['; // brackets belong to the URL, not the address
}

// A DNS name or IPv4 literal as it may appear in a URL authority. Underscores are tolerated
// because internal service names use them, even though RFC 1123 does not.
bool isHostName(std::string_view s) {
    if (s.empty() || s.size() > 253 || s.front() == '.' || s.front() == '-')
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_';
    });
}

std::string toLower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

} // namespace

Duration parseDuration(const std::string& text) {
    // Capped at a year: nobody needs a longer timeout, and the cap keeps every consumer's
    // "now + duration" (even in nanoseconds) far from overflow.
    constexpr uint64_t maxMs = 365ULL * 24 * 3600 * 1000;
    uint64_t number = 0;
    std::string_view unit;
    if (!splitNumber(text, number, unit))
        throw std::invalid_argument("bad duration '" + text +
                                    "' (expected a whole number and a unit: 250ms, 30s, 5m, 1h)");
    uint64_t factor = 0;
    if (unit == "ms")
        factor = 1;
    else if (unit == "s")
        factor = 1000;
    else if (unit == "m")
        factor = 60 * 1000;
    else if (unit == "h")
        factor = 3600 * 1000;
    else if (unit.empty() && number == 0)
        return Duration{0};
    else if (unit.empty())
        throw std::invalid_argument("duration '" + text +
                                    "' needs a unit (ms, s, m or h), e.g. '" + text + "s'");
    else
        throw std::invalid_argument("bad duration unit '" + std::string(unit) + "' in '" + text +
                                    "' (expected ms, s, m or h)");
    if (number > maxMs / factor)
        throw std::invalid_argument("duration '" + text + "' is too long (at most 8760h)");
    return Duration{static_cast<Duration::rep>(number * factor)};
}

size_t parseSize(const std::string& text) {
    uint64_t number = 0;
    std::string_view unit;
    if (!splitNumber(text, number, unit))
        throw std::invalid_argument("bad size '" + text +
                                    "' (expected a whole number with an optional unit: 512, "
                                    "64KiB, 1MiB, 1GiB, 10KB, 10MB, 1GB)");
    uint64_t factor = 0;
    if (unit.empty() || unit == "B")
        factor = 1;
    else if (unit == "KiB")
        factor = 1024;
    else if (unit == "MiB")
        factor = 1024 * 1024;
    else if (unit == "GiB")
        factor = 1024 * 1024 * 1024;
    else if (unit == "KB" || unit == "kB")
        factor = 1000;
    else if (unit == "MB")
        factor = 1000 * 1000;
    else if (unit == "GB")
        factor = 1000 * 1000 * 1000;
    else
        throw std::invalid_argument("bad size unit '" + std::string(unit) + "' in '" + text +
                                    "' (expected B, KiB, MiB, GiB, KB, MB or GB)");
    if (number > std::numeric_limits<size_t>::max() / factor)
        throw std::invalid_argument("size '" + text + "' is too large");
    return static_cast<size_t>(number * factor);
}

UpstreamTarget parseUpstreamUrl(const std::string& url) {
    const auto sep = url.find("://");
    if (sep == std::string::npos)
        throw std::invalid_argument("bad upstream URL '" + url +
                                    "' (expected http://host[:port] or https://host[:port])");
    UpstreamTarget target;
    target.scheme = toLower(url.substr(0, sep));
    if (target.scheme == "http")
        target.port = 80;
    else if (target.scheme == "https")
        target.port = 443;
    else
        throw std::invalid_argument("unsupported scheme '" + url.substr(0, sep) + "' in '" + url +
                                    "' (expected http or https)");

    // The proxy forwards the client's path unchanged, so an upstream URL names an origin
    // only: a path, query or fragment would be silently dropped, hence rejected.
    std::string_view rest(url);
    rest.remove_prefix(sep + 3);
    const auto authEnd = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, authEnd);
    if (authEnd != std::string_view::npos && rest.substr(authEnd) != "/")
        throw std::invalid_argument("upstream URL '" + url +
                                    "' must not have a path, query or fragment");
    if (authority.find('@') != std::string_view::npos)
        throw std::invalid_argument("upstream URL '" + url + "' must not contain credentials");
    if (authority.empty())
        throw std::invalid_argument("upstream URL '" + url + "' has no host");

    std::string_view portText;
    bool hasPort = false;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            throw std::invalid_argument("unterminated '[' in upstream URL '" + url + "'");
        // Stored without brackets: it is what the resolver and connect() take.
        target.host = std::string(authority.substr(1, close - 1));
        if (!isIPv6(target.host))
            throw std::invalid_argument("bad IPv6 address '" + target.host + "' in '" + url + "'");
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                throw std::invalid_argument("unexpected text after ']' in '" + url + "'");
            hasPort = true;
            portText = after.substr(1);
        }
    } else {
        const auto colon = authority.find(':');
        if (colon != std::string_view::npos &&
            authority.find(':', colon + 1) != std::string_view::npos)
            throw std::invalid_argument("IPv6 address in '" + url +
                                        "' must be in brackets: http://[::1]:8080");
        target.host = toLower(std::string(authority.substr(0, colon)));
        if (colon != std::string_view::npos) {
            hasPort = true;
            portText = authority.substr(colon + 1);
        }
        if (!isHostName(target.host))
            throw std::invalid_argument("bad host '" + target.host + "' in '" + url + "'");
    }
    if (hasPort)
        target.port = parsePort(portText, false, url);
    return target;
}

ListenerConfig parseListenAddress(const std::string& text) {
    const std::string usage = " (expected IP:PORT or [IPv6]:PORT, e.g. 127.0.0.1:3128)";
    ListenerConfig listener;
    std::string_view portText;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw std::invalid_argument("bad listen address '" + text + "'" + usage);
        listener.address = text.substr(1, close - 1);
        if (!isIPv6(listener.address))
            throw std::invalid_argument("bad IPv6 address '" + listener.address + "' in '" +
                                        text + "'");
        portText = std::string_view(text).substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos)
            throw std::invalid_argument("listen address '" + text + "' has no port" + usage);
        listener.address = text.substr(0, colon);
        if (listener.address.find(':') != std::string::npos)
            throw std::invalid_argument("IPv6 listen address '" + text +
                                        "' must be in brackets, e.g. [::1]:3128");
        // An IP literal, not a name: binding must not depend on DNS at startup.
        if (!isIPv4(listener.address))
            throw std::invalid_argument("bad IPv4 address '" + listener.address + "' in '" +
                                        text + "'" + usage);
        portText = std::string_view(text).substr(colon + 1);
    }
    listener.port = parsePort(portText, true, text);
    listener.route.clear();
    return listener;
}

} // namespace pooled
