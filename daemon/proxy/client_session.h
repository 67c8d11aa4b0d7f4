// One downstream (client) connection. Parses requests with llhttp, answers them
// strictly in order, one in flight at a time, forwarding each through the pool
// (request_forwarding.cpp) or turning the connection into a tunnel (tunnel.cpp).
// Bodies stream both ways with high/low-water backpressure.
#pragma once

#include "config/config.h"
#include "core/closable.h"
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
class UpstreamConnection;
class Worker;

class ClientSession : public Closable,
                      private HttpParser::Handler,
                      private UpstreamEvents,
                      private PoolWaiter {
public:
    ClientSession(Worker& worker, const ListenerConfig& listener);
    ~ClientSession() override;

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
    void start();
    // Over the connection limit: answer 503 and close.
    void refuse(const ProxyError& error);
    // Worker draining: close now if idle, else after the current response.
    void drain();
    void close(std::function<void()> on_closed) override;

private:
    enum class Phase {
        Idle,        // between requests (keep-alive)
        ReadingHead, // some bytes of a request head arrived
        Waiting,     // head parsed, waiting for an upstream connection
        Forwarding,  // request/response streaming
        Sniffing,    // CONNECT answered, looking at the tunnel's first bytes
        Tunnel,      // raw bytes both ways
        Closing
    };

    // --- client side (client_session.cpp)
    static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void onTimer(uv_timer_t* timer);
    static void onClientWriteDone(void* owner, int status);
    static void onShutdownDone(uv_shutdown_t* req, int status);
    void onClientData(const char* data, size_t length);
    void onClientEof();
    void feedParser();
    void startReadingClient();
    void stopReadingClient();
    void updateClientReading();
    bool writeClient(std::initializer_list<std::string_view> parts);
    size_t clientWriteQueue() const;
    void armTimer(int64_t ms, Phase for_phase);
    void disarmTimer();
    void sendErrorAndClose(const ProxyError& error);
    void sendError(const ProxyError& error, bool close);
    void closeAfterFlush();
    void end();

    // HttpParser::Handler (request side)
    int onHead() override;
    int onBody(const char* data, size_t length) override;
    int onMessageComplete() override;

    // --- one request through the pool (request_forwarding.cpp)
    void handleRequestHead();
    void continueRequestHead();
    void onAuthChecked(bool ok);
    void denyProxyAuth(const char* detail);
    void beginForwarding();
    void checkoutUpstream();
    void onPoolConnection(UpstreamConnection& connection) override;
    void onPoolError(const ProxyError& error) override;
    void attachUpstream(UpstreamConnection& connection);
    void onUpstreamResponseHead(UpstreamConnection&, MessageHead& head) override;
    void onUpstreamBody(UpstreamConnection&, const char* data, size_t length) override;
    void onUpstreamResponseComplete(UpstreamConnection&) override;
    void onUpstreamReadEnd(UpstreamConnection&) override;
    std::string_view takeHeldHead();
    void onUpstreamError(UpstreamConnection&, const ProxyError& error) override;
    void onUpstreamDrained(UpstreamConnection&) override;
    void failRequest(const ProxyError& error);
    void finishRequest();
    void nextRequest();
    void beginRequestHead();
    void refreshConfig();
    void flushUpstream();
    void releaseUpstream(bool reusable);
    void writeLog();
    bool requestReplayable() const;
    void onClientDrained();

    // --- tunnels (tunnel.cpp)
    void handleConnect();
    void onSniff();
    void openTunnel();
    void upgradeToTunnel(UpstreamConnection& connection, const MessageHead& head);
    void onUpstreamConnected(UpstreamConnection&) override;
    void onUpstreamConnectFailed(UpstreamConnection&, const ProxyError& error) override;
    void onUpstreamRaw(UpstreamConnection&, const char* data, size_t length) override;
    void onUpstreamEof(UpstreamConnection&) override;
    void onTunnelClientData(const char* data, size_t length);
    void onTunnelClientEof();
    void closeTunnelIfDone();

    Worker& worker_;
    // The config of the request in flight: a reload (Worker::reload) swaps the worker's,
    // and this session moves to it only between requests (refreshConfig).
    std::shared_ptr<const Config> config_;
    const Config& config() const { return *config_; }
    ListenerConfig listener_; // a copy: a reload may close the Listener it came from
    const RouteConfig* listener_route_ = nullptr;
    uv_tcp_t tcp_;
    uv_timer_t timer_;
    uv_shutdown_t shutdown_req_;
    HandleCloser closer_;
    HttpParser parser_;
    Phase phase_ = Phase::Idle;
    Phase timer_phase_ = Phase::Idle;
    uint64_t timer_deadline_ = 0; // loop time (ms) the timer is for; 0 = disarmed
    std::string client_address_;
    AuthCheck* auth_check_ = nullptr; // credentials being hashed; owned by its work request

    // Bytes read but not yet parsed (the parser pauses after each head and message).
    std::string pending_input_;
    bool reading_client_ = false;
    bool client_eof_ = false;
    bool client_write_blocked_ = false; // client write queue above the high-water mark
    bool upstream_write_blocked_ = false;
    bool draining_ = false;
    bool tcp_open_ = true;

    // The request in flight.
    MessageHead request_;
    RequestTarget target_;
    RouteDecision route_;
    RequestRecord record_;
    std::string request_head_bytes_; // the head as sent upstream, kept for a replay
    std::string upstream_body_;      // framed body bytes parsed but not yet written upstream
    bool head_pending_ = false;      // request_head_bytes_ not yet written to upstream_
    UpstreamConnection* upstream_ = nullptr;
    int64_t request_start_us_ = 0;
    int64_t wait_start_us_ = 0;
    int64_t sent_us_ = 0;
    bool request_complete_ = false;  // whole request parsed (and forwarded if attached)
    bool request_body_started_ = false;
    bool request_sent_ = false;
    bool in_feed_ = false;
    bool logged_ = false;
    bool response_head_sent_ = false; // committed: written, or held in response_head_out_
    // The response head waits for the body bytes of the same upstream read, so a small
    // response leaves in one write(2). The buffer keeps its capacity across requests.
    std::string response_head_out_;
    bool response_head_held_ = false;
    bool response_complete_ = false;
    bool keep_alive_ = true;
    bool head_request_ = false;
    bool expect_continue_ = false;
    BodyFraming response_framing_ = BodyFraming::None;

    // Tunnels.
    std::optional<Authority> tunnel_authority_; // CONNECT target
    bool http_in_tunnel_ = false;               // plain HTTP/1 inside CONNECT
    std::unique_ptr<UpstreamConnection> tunnel_;
    bool tunnel_client_eof_ = false;
    bool tunnel_upstream_eof_ = false;
};

} // namespace pooled
