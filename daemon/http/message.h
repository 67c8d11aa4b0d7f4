// A parsed HTTP/1.x message head (request or response), header order and case kept.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pooled {

struct Header {
    std::string name;
    std::string value;
};

struct MessageHead {
    // Request line (requests only).
    std::string method;
    std::string target;
    // Status line (responses only).
    int status = 0;
    std::string reason;

    uint8_t version_major = 1;
    uint8_t version_minor = 1;
    std::vector<Header> headers;

    // Framing as llhttp understood it.
    bool chunked = false;
    int64_t content_length = -1; // -1 = no Content-Length header
    bool keep_alive = true;      // llhttp_should_keep_alive at head completion
    bool upgrade = false;        // Upgrade requested (request) / 101 (response)

    bool isHttp10() const { return version_major == 1 && version_minor == 0; }
    // First header with this name (case-insensitive), or nullptr.
    const Header* find(std::string_view name) const;
    void clear();
};

// ASCII case-insensitive equality (header names, tokens). Inline: most calls compare
// names of different lengths, and the size check should cost no call.
inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]);
        unsigned char y = static_cast<unsigned char>(b[i]);
        if (x == y)
            continue;
        // Only letters differ by case, and only in bit 0x20.
        if ((x | 0x20) != (y | 0x20) || static_cast<unsigned char>((x | 0x20) - 'a') > 'z' - 'a')
            return false;
    }
    return true;
}

} // namespace pooled
