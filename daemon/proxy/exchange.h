// The state of one request exchange on a client connection: the parser and the
// request being read, where it goes, the upstream connection it rides, the
// response going back, the access-log record, and tunnel state. A ClientSession
// allocates it when a request's first byte arrives and frees it when the
// connection goes back to idle keep-alive, so an idle client costs only the
// small ClientSession. The events it receives (parser, upstream, pool) are
// handed to its session. The Worker keeps a few freed exchanges for reuse (reuse()),
// so a busy keep-alive connection does not pay an allocation per request.
#pragma once

#include "http/headers.h"
#include "http/parser.h"
#include "http/target.h"
#include "observe/request_record.h"
#include "pool/host_pool.h"
#include "pool/upstream_events.h"
#include "proxy/router.h"

#include <uv.h>

#include <memory>
#include <optional>
#include <string>

namespace pooled {

class AuthCheck;
class ClientSession;
class UpstreamConnection;

// What one request sets up and uses, from its first byte to its access-log record. Reset by
// value between requests (Exchange::resetRequest), so that a field added here cannot be
// forgotten by a hand-written reset.
struct RequestState {
    RequestTarget target_;
    RouteDecision route_;
    RequestRecord record_;
    PoolStream upstream_;           // the request's stream, from checkout to release
    int64_t request_start_us_ = 0;
    int64_t wait_start_us_ = 0;
    int64_t sent_us_ = 0;
    bool upstream_write_blocked_ = false;
    bool head_pending_ = false;     // request_head_bytes_ not yet written to upstream_
    bool request_complete_ = false; // whole request parsed (and forwarded if attached)
    bool request_body_started_ = false;
    bool request_sent_ = false;
    bool logged_ = false;
    bool response_head_sent_ = false; // committed: written, or held in response_head_out_
    bool response_head_held_ = false;
    bool response_complete_ = false;
    bool keep_alive_ = true;
    bool head_request_ = false;
    bool expect_continue_ = false;
    BodyFraming response_framing_ = BodyFraming::None;
};

// A CONNECT tunnel or an upgraded connection: lives as long as the client connection.
struct TunnelState {
    std::optional<Authority> tunnel_authority_; // CONNECT target
    // Plain HTTP/1 inside CONNECT: the exchange then lives as long as the connection.
    bool http_in_tunnel_ = false;
    std::unique_ptr<UpstreamConnection> tunnel_;
    bool tunnel_client_eof_ = false;
    bool tunnel_upstream_eof_ = false;
};

struct Exchange final : RequestState,
                        TunnelState,
                        HttpParser::Handler,
                        UpstreamEvents,
                        PoolWaiter {
    Exchange(ClientSession& session, const HttpParser::Limits& limits);
    ~Exchange() override;
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;
    // Back to the state of a new Exchange for `session`, keeping buffer capacity.
    void reuse(ClientSession& session, const HttpParser::Limits& limits);
    // The next request on the same connection: its state is new, the buffers, the unparsed
    // input and the tunnel (plain HTTP inside CONNECT) stay.
    void resetRequest();
    // What its buffers hold on to: a spare that grew large is not worth keeping.
    size_t bufferCapacity() const {
        return pending_input_.capacity() + upstream_body_.capacity() +
               request_head_bytes_.capacity() + response_head_out_.capacity();
    }

    ClientSession* session_;
    HttpParser parser_;
    AuthCheck* auth_check_ = nullptr; // credentials being hashed; owned by its work request
    // Bytes read but not yet parsed (the parser pauses after each head and message).
    std::string pending_input_;
    bool in_feed_ = false;
    // The request in flight, kept out of RequestState so its headers keep their capacity.
    MessageHead request_;
    // Buffers that keep their capacity while the exchange lives.
    std::string request_head_bytes_; // the head as sent upstream, kept for a replay
    std::string upstream_body_;      // framed body bytes parsed but not yet written upstream
    // The response head waits for the body bytes of the same upstream read, so a small
    // response leaves in one write(2).
    std::string response_head_out_;

private:
    // HttpParser::Handler (request side)
    int onHead() override;
    int onBody(const char* data, size_t length) override;
    int onMessageComplete() override;
    // PoolWaiter
    void onPoolStream(PoolStream stream) override;
    void onPoolError(const ProxyError& error) override;
    // UpstreamEvents
    void onUpstreamConnected(UpstreamConnection& c) override;
    void onUpstreamConnectFailed(UpstreamConnection& c, const ProxyError& error) override;
    void onUpstreamResponseHead(UpstreamConnection& c, MessageHead& head) override;
    void onUpstreamBody(UpstreamConnection& c, const char* data, size_t length) override;
    void onUpstreamResponseComplete(UpstreamConnection& c) override;
    void onUpstreamReadEnd(UpstreamConnection& c) override;
    void onUpstreamError(UpstreamConnection& c, const ProxyError& error) override;
    void onUpstreamDrained(UpstreamConnection& c) override;
    void onUpstreamRaw(UpstreamConnection& c, const char* data, size_t length) override;
    void onUpstreamEof(UpstreamConnection& c) override;
};

} // namespace pooled
