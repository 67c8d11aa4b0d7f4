// Shared pieces of the fuzz targets: a parser handler that records what a
// message turned into, so the targets can re-parse what pooled would send.
#pragma once

#include "http/parser.h"

#include <cstdlib>
#include <string>
#include <vector>

namespace pooled::fuzz {

struct Message {
    MessageHead head;
    std::string body;
    bool complete = false;
};

class Recorder : public HttpParser::Handler {
public:
    explicit Recorder(HttpParser::Kind kind, uint32_t extra_headers = 0)
        : parser(kind, *this, limits(extra_headers)) {}
    static HttpParser::Limits limits(uint32_t extra_headers) {
        HttpParser::Limits l;
        l.max_header_count += extra_headers; // pooled adds Host and Via
        l.max_head_size += 1024;
        return l;
    }
    int onHead() override {
        messages.push_back({parser.head(), {}, false});
        return 0;
    }
    int onBody(const char* data, size_t length) override {
        messages.back().body.append(data, length);
        return 0;
    }
    int onMessageComplete() override {
        messages.back().complete = true;
        return HPE_PAUSED; // one message at a time, as pooled parses
    }

    HttpParser parser;
    std::vector<Message> messages;
};

// Invariant broken: crash loudly so libFuzzer keeps the input.
inline void require(bool condition) {
    if (!condition)
        std::abort();
}

inline bool hasLineBreak(const std::string& s) {
    return s.find_first_of("\r\n") != std::string::npos || s.find('\0') != std::string::npos;
}

} // namespace pooled::fuzz
