// Header rules of a proxy: hop-by-hop removal (RFC 9110 7.6.1), Via, and the
// serialization of the heads pooled sends on each side.
#pragma once

#include "http/message.h"

#include <string>
#include <string_view>
#include <vector>

namespace pooled {

// The Connection header's tokens and what they mean for this hop.
struct ConnectionOptions {
    bool close = false;
    bool keep_alive = false;
    bool upgrade = false;
    // Other tokens: header names this hop must drop. Views into the parsed head's values,
    // valid as long as it; close/keep-alive/upgrade are flags, not kept here (typical
    // traffic then parses without allocating).
    std::vector<std::string_view> tokens;
};

ConnectionOptions parseConnectionOptions(const MessageHead& head);
// True for headers that belong to one hop and must not be forwarded.
bool isHopByHop(std::string_view name, const ConnectionOptions& connection);

enum class BodyFraming { None, ContentLength, Chunked, CloseDelimited };

// How the body of a message from the peer is framed, as llhttp saw it.
BodyFraming requestFraming(const MessageHead& request);

struct UpstreamRequestHead {
    std::string_view path;      // origin-form target
    std::string_view authority; // Host header value to send
    std::string_view via_name;
    bool upgrade = false;       // forward Upgrade + Connection: upgrade
};

// Appends the request head sent upstream: always HTTP/1.1, hop-by-hop headers
// dropped, Host set to the authority, Via added, framing re-stated.
void appendUpstreamRequestHead(std::string& out, const MessageHead& request,
                               const UpstreamRequestHead& options);

struct ClientResponseHead {
    BodyFraming framing = BodyFraming::None;
    bool keep_alive = true; // false: add Connection: close
    bool http10_client = false;
    bool upgrade = false; // 101: forward Upgrade + Connection: upgrade
    std::string_view via_name;
};

// How the body of an upstream response will be framed to the client.
BodyFraming clientFraming(const MessageHead& response, bool request_was_head, bool http10_client);

void appendClientResponseHead(std::string& out, const MessageHead& response,
                              const ClientResponseHead& options);

} // namespace pooled
