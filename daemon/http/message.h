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

bool equalsIgnoreCase(std::string_view a, std::string_view b);

} // namespace pooled
