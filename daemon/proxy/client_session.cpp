// ClientSession, client side: reading, parsing, timeouts, writing, closing.
// See client_session.h; the upstream half is in request_forwarding.cpp.
#include "proxy/client_session.h"

#include "core/assert.h"
#include "core/clock.h"
#include "core/worker.h"
#include "http/http1_client_codec.h"
#include "net/tcp_listen.h"
#include "pool/pool_manager.h"
#include "pool/upstream_connection.h"
#include "proxy/access_control.h"
#include "proxy/auth_check.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace pooled {

ClientSession::ClientSession(Worker& worker, const ListenerConfig& listener)
    : worker_(worker), config_(worker.configPtr()) {
    uv_tcp_init(worker_.loop(), &tcp_);
    tcp_.data = this;
    writer_.attach(stream(), worker_.sendRing());
    if (!listener.route.empty())
        listener_route_ = findRoute(config(), listener.route);
}

ClientSession::~ClientSession() = default;

HttpParser::Limits ClientSession::requestLimits() const {
    HttpParser::Limits limits;
    limits.max_head_size = config().limits.max_request_header_size;
    limits.max_header_count = config().limits.max_header_count;
    limits.max_uri_length = config().limits.max_uri_length;
    limits.max_body_size = config().limits.max_request_body;
    return limits;
}

void ClientSession::start() {
    Entry entry(*this);
    uv_tcp_nodelay(&tcp_, 1);
    sockaddr_storage peer{};
    int length = sizeof peer;
    if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &length) == 0 &&
        static_cast<size_t>(length) <= sizeof peer_)
        std::memcpy(&peer_, &peer, static_cast<size_t>(length));
    if (!clientAllowed(config().access, reinterpret_cast<const sockaddr*>(&peer))) {
        worker_.metrics().onDenied("client_not_allowed");
        refuse({403, "http_request_denied", "client not allowed"});
        return;
    }
    phase_ = Phase::Idle;
    armTimer(config().timeouts.client_idle.count(), Phase::Idle);
    startReadingClient();
}

void ClientSession::refuse(const ProxyError& error) {
    Entry entry(*this);
    beginExchange();
    phase_ = Phase::ReadingHead;
    sendErrorAndClose(error);
}

void ClientSession::drain() {
    Entry entry(*this);
    draining_ = true;
    if (exchange_)
        exchange_->keep_alive_ = false;
    if (phase_ == Phase::Idle)
        end();
}

// ---- the exchange

Exchange& ClientSession::beginExchange() {
    if (!exchange_) {
        exchange_ = worker_.takeExchange();
        if (exchange_)
            exchange_->reuse(*this, requestLimits());
        else
            exchange_ = std::make_unique<Exchange>(*this, requestLimits());
    }
    return *exchange_;
}

// Back to idle keep-alive with nothing pipelined: the connection keeps only itself.
// A CONNECT tunnel carrying plain HTTP keeps its exchange (the tunnel's authority).
// A client write that failed meanwhile ends the session here instead.
void ClientSession::settle() {
    if (client_write_failed_ && phase_ != Phase::Closing) {
        endAfterClientWriteFailure();
        return;
    }
    if (phase_ != Phase::Idle || !exchange_ || !exchange_->pending_input_.empty() ||
        exchange_->http_in_tunnel_)
        return;
    detachExchange(*exchange_);
    worker_.keepExchange(std::move(exchange_));
}

// Nothing may call into the exchange once this returns: cancels what is pending for it.
void ClientSession::detachExchange(Exchange& exchange) {
    if (exchange.auth_check_) {
        exchange.auth_check_->cancel();
        exchange.auth_check_ = nullptr;
    }
    if (exchange.queued())
        worker_.pools().cancel(exchange);
    if (exchange.upstream_)
        discardUpstream(endCause());
    if (exchange.tunnel_) {
        exchange.tunnel_->setEvents(nullptr);
        worker_.retire(std::move(exchange.tunnel_));
    }
}

// ---- reading

void ClientSession::startReadingClient() {
    if (reading_client_ || !tcp_open_ || client_eof_)
        return;
    reading_client_ = true;
    uv_read_start(stream(), &ClientSession::onAlloc, &ClientSession::onRead);
}

void ClientSession::stopReadingClient() {
    if (!reading_client_)
        return;
    reading_client_ = false;
    uv_read_stop(stream());
}

// Reading is on unless the upstream is backed up or we hold enough unparsed bytes.
void ClientSession::updateClientReading() {
    if (phase_ == Phase::Closing)
        return;
    bool hold = exchange_ && (exchange_->upstream_write_blocked_ ||
                              exchange_->pending_input_.size() >= config().buffers.read_buffer);
    if (hold)
        stopReadingClient();
    else
        startReadingClient();
}

void ClientSession::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    *buf = static_cast<ClientSession*>(handle->data)->worker_.readBuffer();
}

void ClientSession::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<ClientSession*>(stream->data);
    Entry entry(*self);
    if (nread > 0)
        self->onClientData(buf->base, static_cast<size_t>(nread));
    else if (nread < 0)
        self->onClientEof();
}

void ClientSession::onClientData(const char* data, size_t length) {
    switch (phase_) {
    case Phase::Closing:
        return;
    case Phase::Tunnel:
        onTunnelClientData(data, length);
        return;
    case Phase::Sniffing:
        exchange_->pending_input_.append(data, length);
        onSniff();
        return;
    case Phase::Idle:
        beginRequestHead();
        break;
    default:
        break;
    }
    exchange_->pending_input_.append(data, length);
    feedParser();
    updateClientReading();
}

void ClientSession::onClientEof() {
    client_eof_ = true;
    reading_client_ = false;
    if (phase_ == Phase::Tunnel) {
        onTunnelClientEof();
        return;
    }
    if (phase_ == Phase::Closing)
        return;
    if (!exchange_) {
        end(); // idle
        return;
    }
    // The client went away (or half-closed) before its exchange ended: nothing
    // will read a response, and a half-sent body cannot be completed.
    if (exchange_->upstream_)
        discardUpstream("client_disconnected");
    if (phase_ == Phase::Forwarding || phase_ == Phase::Waiting || phase_ == Phase::Sniffing) {
        if (exchange_->record_.error.empty())
            exchange_->record_.error = "client_disconnected";
        if (phase_ != Phase::Sniffing)
            writeLog();
    }
    end();
}

// Between requests nothing points into the snapshot (the route was reset), so a keep-alive
// client moves to a reloaded config here; a request in flight keeps the one it began with.
void ClientSession::refreshConfig() {
    const auto& current = worker_.configPtr();
    if (config_ == current)
        return;
    const RouteConfig* route = nullptr;
    if (listener_route_) {
        route = findRoute(*current, listener_route_->name);
        if (!route)
            return; // this listener's route is gone: its sessions finish on the old config
    }
    config_ = current;
    listener_route_ = route;
    if (exchange_)
        exchange_->parser_.setLimits(requestLimits());
}

void ClientSession::beginRequestHead() {
    refreshConfig();
    beginExchange();
    phase_ = Phase::ReadingHead;
    exchange_->request_start_us_ = monotonicUs(); // the rest was reset by resetRequest()
    exchange_->record_.start_unix_us = wallClockUs();
    armTimer(config().timeouts.request_header.count(), Phase::ReadingHead);
}

void ClientSession::feedParser() {
    Exchange& exchange = *exchange_;
    if (exchange.in_feed_)
        return; // re-entered from a callback: the loop below picks the work up
    exchange.in_feed_ = true;
    while (!exchange.pending_input_.empty() && phase_ != Phase::Closing &&
           phase_ != Phase::Tunnel && phase_ != Phase::Sniffing && phase_ != Phase::Idle) {
        if (phase_ == Phase::Waiting)
            break; // the head is parsed; the body waits for an upstream connection
        if (phase_ == Phase::Forwarding && exchange.request_complete_)
            break; // a pipelined request waits for the current response
        const std::string& input = exchange.pending_input_;
        auto result = exchange.parser_.execute(input.data(), input.size());
        exchange.pending_input_.erase(0, result.consumed);
        if (result.status == HttpParser::Status::Error) {
            ProxyError error{400, "http_request_error", exchange.parser_.errorReason()};
            if (exchange.parser_.error() == ParseError::HeadTooLarge)
                error.status = 431;
            else if (exchange.parser_.error() == ParseError::UriTooLong)
                error.status = 414;
            else if (exchange.parser_.error() == ParseError::BodyTooLarge)
                error.status = 413;
            else if (exchange.parser_.error() == ParseError::MethodNotImplemented)
                error.status = 501;
            exchange.in_feed_ = false;
            failRequest(error); // drops what this parse produced: nothing half-valid leaves
            return;
        }
        if (result.status == HttpParser::Status::Paused)
            exchange.parser_.resume(); // paused at a message end; the next one waits its turn
        if (phase_ == Phase::ReadingHead && exchange.parser_.headComplete())
            handleRequestHead();
        // Head and the body parsed so far go out together, and only once the bytes
        // before them parsed cleanly: a malformed request is never forwarded.
        flushUpstream();
    }
    exchange.in_feed_ = false;
    flushUpstream();
}

// ---- llhttp callbacks (request)

int ClientSession::onHead() {
    Exchange& exchange = *exchange_;
    exchange.request_ = std::move(exchange.parser_.head());
    // Parsing goes on over the bytes already read: body bytes that arrived with the
    // head are framed into upstream_body_ and checked before anything is sent or
    // any connection is opened. Further reads wait until a connection is attached.
    return 0;
}

int ClientSession::onBody(const char* data, size_t length) {
    Exchange& exchange = *exchange_;
    exchange.record_.bytes_in += length;
    Http1ClientCodec::encodeRequestBody(exchange.upstream_body_, data, length,
                                        exchange.request_.chunked);
    return 0;
}

int ClientSession::onMessageComplete() {
    Exchange& exchange = *exchange_;
    exchange.request_complete_ = true;
    Http1ClientCodec::encodeRequestEnd(exchange.upstream_body_, exchange.request_.chunked);
    if (exchange.request_.upgrade)
        return 0; // llhttp stops with HPE_PAUSED_UPGRADE
    return HPE_PAUSED;
}

// ---- writing

bool ClientSession::writeClient(std::initializer_list<std::string_view> parts) {
    if (!tcp_open_ || phase_ == Phase::Closing || client_write_failed_)
        return false;
    if (int rc = writer_.write(parts); rc != 0) {
        onClientWriteFailed(rc);
        return false;
    }
    if (clientWriteQueue() > config().buffers.high_water)
        holdOriginForClient();
    return true;
}

// Until onClientDrained: the origin is held back for the client's sake, so the client,
// not the origin, now has to make progress within client_idle.
void ClientSession::holdOriginForClient() {
    if (client_write_blocked_)
        return;
    client_write_blocked_ = true;
    if (phase_ == Phase::Forwarding)
        armTimer(config().timeouts.client_idle.count(), Phase::Forwarding);
    if (exchange_ && exchange_->upstream_)
        exchange_->upstream_.pauseResponse();
    if (exchange_ && exchange_->tunnel_)
        exchange_->tunnel_->pauseReading();
}

size_t ClientSession::clientWriteQueue() const {
    return writer_.queued();
}

void ClientSession::onClientWriteDone(void* owner, int status) {
    auto* self = static_cast<ClientSession*>(owner);
    if (status == UV_ECANCELED)
        return; // closing: the session may be past any further work
    Entry entry(*self);
    if (status != 0) {
        self->onClientWriteFailed(status);
        return;
    }
    if (self->client_write_blocked_ &&
        self->clientWriteQueue() <= self->config().buffers.low_water)
        self->onClientDrained();
}

// The client is gone (reset, broken pipe): nothing more can reach it. The write may sit
// deep in an upstream or parser callback whose callers still use the exchange, so the
// exchange ends when the outermost Entry does (settle); until then writes are refused,
// and the request in flight is marked.
void ClientSession::onClientWriteFailed(int status) {
    POOLED_ASSERT(depth_ > 0, "a client write runs inside an Entry, whose end settles it");
    if (client_write_failed_ || phase_ == Phase::Closing)
        return;
    client_write_failed_ = true;
    if (exchange_ && exchange_->record_.error.empty()) {
        exchange_->record_.error = "client_disconnected";
        exchange_->record_.detail = uv_strerror(status);
    }
}

// A response half-delivered leaves its upstream connection mid-message: it is discarded.
void ClientSession::endAfterClientWriteFailure() {
    if (exchange_) {
        if (exchange_->upstream_)
            discardUpstream("client_disconnected");
        if (phase_ == Phase::Forwarding || phase_ == Phase::Waiting || phase_ == Phase::Tunnel)
            writeLog();
    }
    end();
}

void ClientSession::onClientDrained() {
    client_write_blocked_ = false;
    if (phase_ == Phase::Forwarding && timer_phase_ == Phase::Forwarding)
        disarmTimer();
    if (!exchange_)
        return;
    if (exchange_->upstream_)
        exchange_->upstream_.resumeResponse();
    if (exchange_->tunnel_)
        exchange_->tunnel_->resumeReading();
}

void ClientSession::sendError(const ProxyError& error, bool close) {
    Exchange& exchange = *exchange_;
    exchange.record_.status = error.status;
    exchange.record_.error = error.token;
    exchange.record_.detail = error.detail;
    writeClient({renderErrorResponse(config().via_name, error, close)});
}

void ClientSession::sendErrorAndClose(const ProxyError& error) {
    sendError(error, true);
    closeAfterFlush();
}

void ClientSession::closeAfterFlush() {
    if (phase_ == Phase::Closing)
        return;
    phase_ = Phase::Closing;
    stopReadingClient();
    disarmTimer();
    if (exchange_ && exchange_->upstream_)
        discardUpstream(endCause());
    // The shutdown follows the last queued write.
    if (!tcp_open_ || writer_.shutdownAfterFlush(&ClientSession::onShutdownDone) != 0)
        end();
    else
        armTimer(5000, Phase::Closing); // a client that never reads must not pin us
}

void ClientSession::onShutdownDone(void* owner, int status) {
    if (status == UV_ECANCELED)
        return; // closed meanwhile
    auto* self = static_cast<ClientSession*>(owner);
    Entry entry(*self);
    self->end();
}

void ClientSession::end() {
    phase_ = Phase::Closing;
    worker_.endSession(this);
}

// ---- timers

// One timer per connection would cost a uv_timer_t each; the Worker's deadline queues
// (one per duration) cost a list hook. timer_phase_ says which phase a deadline is for:
// one that fires after its phase ended does nothing.
void ClientSession::armTimer(int64_t ms, Phase for_phase) {
    timer_phase_ = for_phase;
    if (ms <= 0 || closer_.closing()) {
        disarmTimer();
        return;
    }
    worker_.clientTimers().arm(*this, static_cast<uint64_t>(ms));
}

void ClientSession::disarmTimer() {
    Deadline::disarm();
}

void ClientSession::onDeadline(Deadline& deadline, void*) {
    auto& self = static_cast<ClientSession&>(deadline);
    Entry entry(self);
    self.onTimer();
}

void ClientSession::onTimer() {
    if (timer_phase_ != phase_)
        return;
    switch (phase_) {
    case Phase::Idle:
        end();
        return;
    case Phase::ReadingHead:
        sendErrorAndClose({408, "http_request_error", "request header timeout"});
        writeLog();
        return;
    case Phase::Waiting:
        if (exchange_->queued())
            worker_.pools().cancel(*exchange_);
        failRequest({503, "connection_limit_reached",
                     "no upstream connection became available in time"});
        return;
    case Phase::Sniffing:
        openTunnel();
        return;
    case Phase::Tunnel:
        end();
        return;
    case Phase::Closing:
        end();
        return;
    case Phase::Forwarding:
        if (client_write_blocked_) {
            // A client that stopped reading must not pin an upstream connection forever.
            exchange_->record_.error = "client_write_timeout";
            exchange_->record_.detail = "the client stopped reading the response";
            discardUpstream("client_write_timeout");
            writeLog();
            end();
        }
        return;
    }
}

// ---- closing

void ClientSession::close(std::function<void()> on_closed) {
    if (closer_.closing())
        return;
    phase_ = Phase::Closing;
    disarmTimer();
    if (exchange_)
        detachExchange(*exchange_);
    writer_.abandon();
    tcp_open_ = false;
    closer_.add(reinterpret_cast<uv_handle_t*>(&tcp_));
    closer_.arm(std::move(on_closed));
}

} // namespace pooled
