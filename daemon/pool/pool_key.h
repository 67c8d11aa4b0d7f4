// What makes two upstream connections interchangeable: scheme, host and port
// (TLS settings join the key when TLS origination lands).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace pooled {

struct PoolKey {
    std::string scheme; // "http" | "https"
    std::string host;   // lower-case name or IP literal (IPv6 without brackets)
    uint16_t port = 0;

    bool operator==(const PoolKey&) const = default;
    std::string toString() const {
        bool v6 = host.find(':') != std::string::npos;
        return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    }
};

struct PoolKeyHash {
    size_t operator()(const PoolKey& k) const {
        size_t h = std::hash<std::string>{}(k.host);
        h ^= std::hash<std::string>{}(k.scheme) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        return h ^ (static_cast<size_t>(k.port) << 1);
    }
};

} // namespace pooled
