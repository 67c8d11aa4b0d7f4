// What makes two upstream connections interchangeable: scheme, host, port and, for
// https, the TLS settings (trust, client certificate, SNI) named by a profile id, so a
// connection made with one client certificate or CA is never handed to another.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace pooled {

struct PoolKey {
    std::string scheme; // "http" | "https"
    std::string host;   // lower-case name or IP literal (IPv6 without brackets)
    uint16_t port = 0;
    std::string tls_profile{}; // tls/tls_profile.h: "" = default settings (or plain http)

    bool operator==(const PoolKey&) const = default;
    std::string toString() const {
        bool v6 = host.find(':') != std::string::npos;
        std::string text =
            scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
        if (!tls_profile.empty())
            text += " [" + tls_profile + "]";
        return text;
    }
};

struct PoolKeyHash {
    size_t operator()(const PoolKey& k) const {
        size_t h = std::hash<std::string>{}(k.host);
        h ^= std::hash<std::string>{}(k.scheme) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        h ^= std::hash<std::string>{}(k.tls_profile) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        return h ^ (static_cast<size_t>(k.port) << 1);
    }
};

} // namespace pooled
