// ClientSession, client side: reading, parsing, timeouts, writing, closing.
// See client_session.h; the upstream half is in request_forwarding.cpp.
#include "proxy/client_session.h"

#include "core/clock.h"
#include "core/worker.h"
#include "core/write_request.h"
#include "net/tcp_listen.h"
#include "pool/pool_manager.h"
#include "pool/upstream_connection.h"
#include "proxy/access_control.h"
#include "proxy/auth_check.h"

#include <spdlog/spdlog.h>

namespace pooled {

namespace {

HttpParser::Limits requestLimits(const Config& config) {
    HttpParser::Limits limits;
    limits.max_head_size = config.limits.max_request_header_size;
    limits.max_header_count = config.limits.max_header_count;
    limits.max_uri_length = config.limits.max_uri_length;
    limits.max_body_size = config.limits.max_request_body;
    return limits;
}

} // namespace

ClientSession::ClientSession(Worker& worker, const ListenerConfig& listener)
    : worker_(worker), config_(worker.configPtr()), listener_(listener),
      parser_(HttpParser::Kind::Request, *this, requestLimits(*config_)) {
    uv_tcp_init(worker_.loop(), &tcp_);
    uv_timer_init(worker_.loop(), &timer_);
    tcp_.data = this;
    timer_.data = this;
    if (!listener_.route.empty())
        listener_route_ = findRoute(config(), listener_.route);
}

ClientSession::~ClientSession() = default;

void ClientSession::start() {
    uv_tcp_nodelay(&tcp_, 1);
    sockaddr_storage peer{};
    int length = sizeof peer;
    if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &length) == 0)
        client_address_ = formatSockaddr(reinterpret_cast<const sockaddr*>(&peer));
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
    phase_ = Phase::ReadingHead;
    sendErrorAndClose(error);
}

void ClientSession::drain() {
    draining_ = true;
    keep_alive_ = false;
    if (phase_ == Phase::Idle)
        end();
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
    bool hold = upstream_write_blocked_ ||
                pending_input_.size() >= config().buffers.read_buffer;
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
        pending_input_.append(data, length);
        onSniff();
        return;
    case Phase::Idle:
        beginRequestHead();
        break;
    default:
        break;
    }
    pending_input_.append(data, length);
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
    // The client went away (or half-closed) before its exchange ended: nothing
    // will read a response, and a half-sent body cannot be completed.
    if (upstream_)
        releaseUpstream(false);
    if (phase_ == Phase::Forwarding || phase_ == Phase::Waiting || phase_ == Phase::Sniffing) {
        record_.error = record_.error.empty() ? "client_disconnected" : record_.error;
        if (phase_ != Phase::Sniffing)
            writeLog();
    }
    end();
}

// Between requests nothing points into the snapshot (route_ was reset), so a keep-alive
// client moves to a reloaded config here; a request in flight keeps the one it began with.
void ClientSession::refreshConfig() {
    const auto& current = worker_.configPtr();
    if (config_ == current)
        return;
    const RouteConfig* route = nullptr;
    if (!listener_.route.empty()) {
        route = findRoute(*current, listener_.route);
        if (!route)
            return; // this listener's route is gone: its sessions finish on the old config
    }
    config_ = current;
    listener_route_ = route;
    parser_.setLimits(requestLimits(*config_));
}

void ClientSession::beginRequestHead() {
    refreshConfig();
    phase_ = Phase::ReadingHead;
    request_start_us_ = monotonicUs();
    record_ = RequestRecord{};
    record_.start_unix_us = wallClockUs();
    armTimer(config().timeouts.request_header.count(), Phase::ReadingHead);
}

void ClientSession::feedParser() {
    if (in_feed_)
        return; // re-entered from a callback: the loop below picks the work up
    in_feed_ = true;
    while (!pending_input_.empty() && phase_ != Phase::Closing && phase_ != Phase::Tunnel &&
           phase_ != Phase::Sniffing && phase_ != Phase::Idle) {
        if (phase_ == Phase::Waiting)
            break; // the head is parsed; the body waits for an upstream connection
        if (phase_ == Phase::Forwarding && request_complete_)
            break; // a pipelined request waits for the current response
        auto result = parser_.execute(pending_input_.data(), pending_input_.size());
        pending_input_.erase(0, result.consumed);
        if (result.status == HttpParser::Status::Error) {
            ProxyError error{400, "http_request_error", parser_.errorReason()};
            if (parser_.error() == ParseError::HeadTooLarge)
                error.status = 431;
            else if (parser_.error() == ParseError::UriTooLong)
                error.status = 414;
            else if (parser_.error() == ParseError::BodyTooLarge)
                error.status = 413;
            else if (parser_.error() == ParseError::MethodNotImplemented)
                error.status = 501;
            in_feed_ = false;
            failRequest(error); // drops what this parse produced: nothing half-valid leaves
            return;
        }
        if (result.status == HttpParser::Status::Paused)
            parser_.resume(); // paused at a message end; the next one waits its turn
        if (phase_ == Phase::ReadingHead && parser_.headComplete())
            handleRequestHead();
        // Head and the body parsed so far go out together, and only once the bytes
        // before them parsed cleanly: a malformed request is never forwarded.
        flushUpstream();
    }
    in_feed_ = false;
    flushUpstream();
}

// ---- llhttp callbacks (request)

int ClientSession::onHead() {
    request_ = std::move(parser_.head());
    // Parsing goes on over the bytes already read: body bytes that arrived with the
    // head are framed into upstream_body_ and checked before anything is sent or
    // any connection is opened. Further reads wait until a connection is attached.
    return 0;
}

int ClientSession::onBody(const char* data, size_t length) {
    record_.bytes_in += length;
    if (request_.chunked) {
        char size_line[24]; // no allocation per chunk
        auto end = fmt::format_to(size_line, "{:x}\r\n", length);
        upstream_body_.append(size_line, static_cast<size_t>(end - size_line));
        upstream_body_.append(data, length);
        upstream_body_.append("\r\n");
    } else {
        upstream_body_.append(data, length);
    }
    return 0;
}

int ClientSession::onMessageComplete() {
    request_complete_ = true;
    if (request_.chunked)
        upstream_body_.append("0\r\n\r\n");
    if (request_.upgrade)
        return 0; // llhttp stops with HPE_PAUSED_UPGRADE
    return HPE_PAUSED;
}

// ---- writing

bool ClientSession::writeClient(std::initializer_list<std::string_view> parts) {
    if (!tcp_open_ || phase_ == Phase::Closing)
        return false;
    if (writeParts(stream(), parts, worker_.writeBuffers(), this,
                   &ClientSession::onClientWriteDone) != 0)
        return false;
    if (clientWriteQueue() > config().buffers.high_water && !client_write_blocked_) {
        client_write_blocked_ = true;
        // The origin is held back for the client's sake: the client, not the origin,
        // now has to make progress within client_idle.
        if (phase_ == Phase::Forwarding)
            armTimer(config().timeouts.client_idle.count(), Phase::Forwarding);
        if (upstream_)
            upstream_->pauseReading();
        if (tunnel_)
            tunnel_->pauseReading();
    }
    return true;
}

size_t ClientSession::clientWriteQueue() const {
    return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&tcp_));
}

void ClientSession::onClientWriteDone(void* owner, int status) {
    auto* self = static_cast<ClientSession*>(owner);
    if (status != 0) {
        if (status != UV_ECANCELED && self->phase_ != Phase::Closing) {
            // The client is gone: the upstream response cannot be delivered.
            if (self->upstream_) {
                self->record_.error = "client_disconnected";
                self->releaseUpstream(false);
                self->writeLog();
            }
            self->end();
        }
        return;
    }
    if (self->client_write_blocked_ &&
        self->clientWriteQueue() <= self->config().buffers.low_water)
        self->onClientDrained();
}

void ClientSession::onClientDrained() {
    client_write_blocked_ = false;
    if (phase_ == Phase::Forwarding && timer_phase_ == Phase::Forwarding)
        disarmTimer();
    if (upstream_)
        upstream_->resumeReading();
    if (tunnel_)
        tunnel_->resumeReading();
}

void ClientSession::sendError(const ProxyError& error, bool close) {
    record_.status = error.status;
    record_.error = error.token;
    record_.detail = error.detail;
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
    if (upstream_)
        releaseUpstream(false);
    shutdown_req_.data = this;
    // uv_shutdown completes once every queued write is flushed.
    if (!tcp_open_ || uv_shutdown(&shutdown_req_, stream(), &ClientSession::onShutdownDone) != 0)
        end();
    else
        armTimer(5000, Phase::Closing); // a client that never reads must not pin us
}

void ClientSession::onShutdownDone(uv_shutdown_t* req, int) {
    static_cast<ClientSession*>(req->data)->end();
}

void ClientSession::end() {
    phase_ = Phase::Closing;
    worker_.endSession(this);
}

// ---- timers

void ClientSession::armTimer(int64_t ms, Phase for_phase) {
    timer_phase_ = for_phase;
    if (ms <= 0) {
        disarmTimer();
        return;
    }
    timer_deadline_ = uv_now(worker_.loop()) + static_cast<uint64_t>(ms);
    // A timer already due no later than the new deadline stays as it is and onTimer
    // re-arms it for the rest: deadlines mostly move later (header timeout, keep-alive),
    // so the loop's timer heap is touched about once per timeout, not several times
    // per request.
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(&timer_)) &&
        uv_timer_get_due_in(&timer_) <= static_cast<uint64_t>(ms))
        return;
    uv_timer_start(&timer_, &ClientSession::onTimer, static_cast<uint64_t>(ms), 0);
}

void ClientSession::disarmTimer() {
    timer_deadline_ = 0; // an armed timer then fires into nothing; cheaper than a heap removal
}

void ClientSession::onTimer(uv_timer_t* timer) {
    auto* self = static_cast<ClientSession*>(timer->data);
    if (self->timer_deadline_ == 0)
        return;
    const uint64_t now = uv_now(self->worker_.loop());
    if (now < self->timer_deadline_) {
        uv_timer_start(timer, &ClientSession::onTimer, self->timer_deadline_ - now, 0);
        return;
    }
    self->timer_deadline_ = 0;
    if (self->timer_phase_ != self->phase_)
        return;
    switch (self->phase_) {
    case Phase::Idle:
        self->end();
        return;
    case Phase::ReadingHead:
        self->sendErrorAndClose({408, "http_request_error", "request header timeout"});
        self->writeLog();
        return;
    case Phase::Waiting:
        self->worker_.pools().cancel(*self);
        self->failRequest({503, "connection_limit_reached",
                           "no upstream connection became available in time"});
        return;
    case Phase::Sniffing:
        self->openTunnel();
        return;
    case Phase::Tunnel:
        self->end();
        return;
    case Phase::Closing:
        self->end();
        return;
    case Phase::Forwarding:
        if (self->client_write_blocked_) {
            // A client that stopped reading must not pin an upstream connection forever.
            self->record_.error = "client_write_timeout";
            self->record_.detail = "the client stopped reading the response";
            self->releaseUpstream(false);
            self->writeLog();
            self->end();
        }
        return;
    }
}

// ---- closing

void ClientSession::close(std::function<void()> on_closed) {
    if (closer_.closing())
        return;
    phase_ = Phase::Closing;
    if (auth_check_) {
        auth_check_->cancel();
        auth_check_ = nullptr;
    }
    if (queued())
        worker_.pools().cancel(*this);
    if (upstream_)
        releaseUpstream(false);
    if (tunnel_) {
        tunnel_->setEvents(nullptr);
        worker_.retire(std::move(tunnel_));
    }
    tcp_open_ = false;
    closer_.add(reinterpret_cast<uv_handle_t*>(&timer_));
    closer_.add(reinterpret_cast<uv_handle_t*>(&tcp_));
    closer_.arm(std::move(on_closed));
}

} // namespace pooled
