// One downstream (client) connection. Parses requests with llhttp, answers them
// strictly in order, one in flight at a time, forwarding each through the pool
// (request_forwarding.cpp) or turning the connection into a tunnel (tunnel.cpp).
// Bodies stream both ways with high/low-water backpressure.
//
// Memory: an idle keep-alive connection is only this object (the socket, a shared
// timeout hook, the peer address, a few flags). Everything a request needs lives in
// an Exchange (proxy/exchange.h), allocated when a request's first byte arrives and
// freed when the connection is idle again with nothing pipelined.
#pragma once

#include "config/config.h"
#include "core/closable.h"
#include "core/deadline_queue.h"
#include "core/intrusive_list.h"
#include "http/proxy_status.h"
#include "net/stream_writer.h"
#include "proxy/exchange.h"

#include <netinet/in.h>
#include <uv.h>

#include <memory>
#include <string>

namespace pooled {

class UpstreamConnection;
class Worker;

class ClientSession : public Closable, public ListHook<ClientSession>, private Deadline {
public:
    ClientSession(Worker& worker, const ListenerConfig& listener);
    ~ClientSession() override;
    ClientSession(const ClientSession&) = delete;
    ClientSession& operator=(const ClientSession&) = delete;

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
    void start();
    // Over the connection limit: answer 503 and close.
    void refuse(const ProxyError& error);
    // Worker draining: close now if idle, else after the current response.
    void drain();
    void close(std::function<void()> on_closed) override;
    // The Worker's client timeouts fire here (see DeadlineTimers).
    static void onDeadline(Deadline& deadline, void* context);

private:
    friend struct Exchange;

    enum class Phase : uint8_t {
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
    static void onClientWriteDone(void* owner, int status);
    // A write to the client failed (synchronously or in its callback): see settle().
    void onClientWriteFailed(int status);
    void endAfterClientWriteFailure();
    static void onShutdownDone(void* owner, int status);
    void onClientData(const char* data, size_t length);
    void onClientEof();
    void feedParser();
    void startReadingClient();
    void stopReadingClient();
    void updateClientReading();
    bool writeClient(std::initializer_list<std::string_view> parts);
    size_t clientWriteQueue() const;
    void holdOriginForClient();
    void armTimer(int64_t ms, Phase for_phase);
    void disarmTimer();
    void onTimer();
    // Every entry from the loop (reads, writes, timeouts, upstream and pool events) holds
    // one; when the outermost ends, an exchange that has gone idle is freed. Freeing it
    // any deeper could pull it from under a caller still using it.
    class Entry {
    public:
        explicit Entry(ClientSession& session) : session_(session) { ++session_.depth_; }
        ~Entry() {
            if (--session_.depth_ == 0)
                session_.settle();
        }
        Entry(const Entry&) = delete;
        Entry& operator=(const Entry&) = delete;

    private:
        ClientSession& session_;
    };
    Exchange& beginExchange();
    void settle();
    void detachExchange(Exchange& exchange);
    HttpParser::Limits requestLimits() const;
    void sendErrorAndClose(const ProxyError& error);
    void sendError(const ProxyError& error, bool close);
    void closeAfterFlush();
    void end();

    // Parser events (request side), through the Exchange.
    int onHead();
    int onBody(const char* data, size_t length);
    int onMessageComplete();

    // --- one request through the pool (request_forwarding.cpp)
    void handleRequestHead();
    void continueRequestHead();
    void onAuthChecked(bool ok);
    void denyProxyAuth(const char* detail);
    void beginForwarding();
    void checkoutUpstream();
    void onPoolStream(PoolStream stream);
    void onPoolError(const ProxyError& error);
    void attachUpstream(PoolStream stream);
    void onUpstreamResponseHead(UpstreamConnection&, MessageHead& head);
    void onUpstreamBody(UpstreamConnection&, const char* data, size_t length);
    void onUpstreamResponseComplete(UpstreamConnection&);
    void onUpstreamReadEnd(UpstreamConnection&);
    std::string_view takeHeldHead();
    void onUpstreamError(UpstreamConnection&, const ProxyError& error);
    void onUpstreamDrained(UpstreamConnection&);
    void failRequest(const ProxyError& error);
    void finishRequest();
    void nextRequest();
    void beginRequestHead();
    void refreshConfig();
    void flushUpstream();
    // The request is over: the pool keeps the connection if reuseVerdict allows.
    void releaseUpstream();
    // The connection cannot be reused; `cause` labels the closed-connections metric.
    void discardUpstream(std::string_view cause);
    // What ended the exchange, as a metric label: its error, else the client closing.
    std::string_view endCause() const;
    void writeLog();
    bool requestReplayable() const;
    void onClientDrained();

    // --- tunnels (tunnel.cpp)
    void handleConnect();
    void onSniff();
    void openTunnel();
    void upgradeToTunnel(UpstreamConnection& connection, const MessageHead& head);
    void onUpstreamConnected(UpstreamConnection&);
    void onUpstreamConnectFailed(UpstreamConnection&, const ProxyError& error);
    void onUpstreamRaw(UpstreamConnection&, const char* data, size_t length);
    void onUpstreamEof(UpstreamConnection&);
    void onTunnelClientData(const char* data, size_t length);
    void onTunnelClientEof();
    void closeTunnelIfDone();

    Worker& worker_;
    // The config of the request in flight: a reload (Worker::reload) swaps the worker's,
    // and this session moves to it only between requests (refreshConfig).
    std::shared_ptr<const Config> config_;
    const Config& config() const { return *config_; }
    // The route of a sidecar listener, in config_ (its name finds it again after a reload);
    // null on a forward listener.
    const RouteConfig* listener_route_ = nullptr;
    std::unique_ptr<Exchange> exchange_; // null while idle
    uv_tcp_t tcp_;
    StreamWriter writer_{this, &ClientSession::onClientWriteDone};
    HandleCloser closer_;
    // The peer, kept compact: formatted only for the access log.
    union {
        sockaddr any;
        sockaddr_in v4;
        sockaddr_in6 v6;
    } peer_{};
    Phase phase_ = Phase::Idle;
    Phase timer_phase_ = Phase::Idle;
    uint8_t depth_ = 0; // Entry nesting
    bool reading_client_ = false;
    bool client_eof_ = false;
    bool client_write_blocked_ = false; // client write queue above the high-water mark
    bool client_write_failed_ = false;  // the client is gone; settle() ends the exchange
    bool draining_ = false;
    bool tcp_open_ = true;
};

} // namespace pooled
