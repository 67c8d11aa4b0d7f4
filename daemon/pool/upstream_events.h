// What an upstream connection reports, to whoever drives it at the moment: its
// pool while connecting or idle, the request using it while busy, a tunnel.
#pragma once

#include "http/message.h"
#include "http/proxy_status.h"

#include <cstddef>

namespace pooled {

class UpstreamConnection;

class UpstreamEvents {
public:
    virtual ~UpstreamEvents() = default;
    virtual void onUpstreamConnected(UpstreamConnection&) {}
    // The connection could not be established; it is dead.
    virtual void onUpstreamConnectFailed(UpstreamConnection&, const ProxyError&) {}
    virtual void onUpstreamResponseHead(UpstreamConnection&, MessageHead&) {}
    virtual void onUpstreamBody(UpstreamConnection&, const char*, size_t) {}
    virtual void onUpstreamResponseComplete(UpstreamConnection&) {}
    // Everything one read delivered has been parsed and reported: bytes held back to be
    // written together with what followed them in the same read must go out now.
    virtual void onUpstreamReadEnd(UpstreamConnection&) {}
    // Reset, EOF, timeout or unparseable bytes: the connection is dead.
    virtual void onUpstreamError(UpstreamConnection&, const ProxyError&) {}
    // The write queue fell below the low-water mark.
    virtual void onUpstreamDrained(UpstreamConnection&) {}
    // Raw mode (tunnels): bytes and end of stream.
    virtual void onUpstreamRaw(UpstreamConnection&, const char*, size_t) {}
    virtual void onUpstreamEof(UpstreamConnection&) {}
};

} // namespace pooled
