// ClientSession, upstream half: one request through the pool and its response
// back to the client, with one replay on a fresh connection when a reused one
// fails before answering. See client_session.h.
#include "proxy/client_session.h"

#include "core/assert.h"
#include "core/clock.h"
#include "core/worker.h"
#include "http/http1_client_codec.h"
#include "observe/access_log.h"
#include "pool/pool_manager.h"
#include "pool/upstream_connection.h"
#include "proxy/access_control.h"
#include "proxy/auth_check.h"
#include "net/tcp_listen.h"
#include "proxy/proxy_auth.h"

#include <fmt/format.h>

namespace pooled {

namespace {

bool idempotent(std::string_view method) {
    return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
           method == "PUT" || method == "DELETE";
}

} // namespace

void ClientSession::handleRequestHead() {
    Exchange& exchange = *exchange_;
    exchange.record_.method = exchange.request_.method;
    exchange.head_request_ = exchange.request_.method == "HEAD";
    exchange.keep_alive_ = exchange.request_.keep_alive && !draining_;
    if (const char* problem = hostHeaderProblem(exchange.request_)) {
        failRequest({400, "http_request_error", problem});
        return;
    }
    const Header* expect = exchange.request_.find("expect");
    exchange.expect_continue_ = expect && equalsIgnoreCase(expect->value, "100-continue") &&
                       !exchange.request_.isHttp10();
    if (expect && !exchange.expect_continue_) {
        failRequest({417, "http_request_error", "unsupported expectation"});
        return;
    }
    // Requests inside a CONNECT tunnel were authorized with the CONNECT itself.
    const auto& auth = config().access.proxy_auth;
    if (auth.credentials && !exchange.http_in_tunnel_) {
        const Header* credentials = exchange.request_.find("proxy-authorization");
        if (!credentials) {
            denyProxyAuth("no proxy credentials");
            return;
        }
        if (!auth.credentials->verified(credentials->value)) {
            // Not seen yet: hash it on the thread pool; the body waits (Phase::Waiting).
            phase_ = Phase::Waiting;
            exchange.auth_check_ =
                AuthCheck::start(worker_.loop(), auth.credentials, credentials->value,
                                 [this](bool ok) {
                                     Entry entry(*this);
                                     onAuthChecked(ok);
                                 });
            return;
        }
    }
    continueRequestHead();
}

void ClientSession::onAuthChecked(bool ok) {
    exchange_->auth_check_ = nullptr;
    if (!ok) {
        denyProxyAuth("wrong proxy credentials");
        return;
    }
    continueRequestHead();
    feedParser(); // body bytes read with the head
}

void ClientSession::denyProxyAuth(const char* detail) {
    Exchange& exchange = *exchange_;
    worker_.metrics().onDenied("proxy_auth");
    exchange.record_.status = 407;
    exchange.record_.error = "http_request_denied";
    exchange.record_.detail = detail;
    writeClient({renderProxyAuthRequired(config().via_name, config().access.proxy_auth.realm)});
    writeLog();
    closeAfterFlush();
}

void ClientSession::continueRequestHead() {
    Exchange& exchange = *exchange_;
    if (exchange.request_.method == "CONNECT") {
        handleConnect();
        return;
    }
    auto target = parseRequestTarget(exchange.request_.method, exchange.request_.target);
    if (!target) {
        failRequest({400, "http_request_error", "invalid request target"});
        return;
    }
    exchange.target_ = std::move(*target);
    ProxyError error;
    const Authority* tunnel = exchange.http_in_tunnel_ && exchange.tunnel_authority_
                                  ? &*exchange.tunnel_authority_
                                  : nullptr;
    RouteContext context{config(), listener_route_, tunnel};
    auto decision = routeRequest(context, exchange.request_, exchange.target_, error);
    if (!decision) {
        failRequest(error);
        return;
    }
    exchange.route_ = std::move(*decision);
    exchange.record_.scheme = exchange.route_.key.scheme;
    exchange.record_.host = exchange.route_.key.host;
    exchange.record_.port = exchange.route_.key.port;
    // Name and port rules apply to where the request goes (routes included) before any
    // lookup; address rules wait for the resolved addresses (UpstreamConnection).
    if (std::string denied = destinationNameDenied(config().access, exchange.route_.key.host,
                                                   exchange.route_.key.port);
        !denied.empty()) {
        worker_.metrics().onDenied("destination");
        failRequest({403, "http_request_denied", std::move(denied)});
        return;
    }
    exchange.record_.path = exchange.route_.path;
    exchange.record_.route = exchange.route_.route ? exchange.route_.route->name : "";
    exchange.request_head_bytes_.clear();
    Http1ClientCodec::encodeRequestHead(exchange.request_head_bytes_, exchange.request_,
                                        {exchange.route_.path, exchange.route_.authority,
                                         config().via_name, exchange.request_.upgrade});
    phase_ = Phase::Waiting;
    exchange.wait_start_us_ = monotonicUs();
    checkoutUpstream();
}

bool ClientSession::requestReplayable() const {
    Exchange& exchange = *exchange_;
    return !exchange.request_body_started_ && idempotent(exchange.request_.method);
}

void ClientSession::checkoutUpstream() {
    Exchange& exchange = *exchange_;
    bool has_body = exchange.request_.chunked || exchange.request_.content_length > 0;
    exchange.prefer_fresh = has_body || !idempotent(exchange.request_.method);
    exchange.require_fresh = exchange.record_.retries > 0;
    Checkout result = worker_.pools().checkout(exchange.route_.key, *exchange_);
    switch (result.kind) {
    case Checkout::Kind::Ready:
        attachUpstream(result.stream);
        return;
    case Checkout::Kind::Queued:
        armTimer(config().pool.queue_timeout.count(), Phase::Waiting);
        return;
    case Checkout::Kind::Failed:
        failRequest(result.error);
        return;
    }
}

void ClientSession::onPoolStream(PoolStream stream) {
    attachUpstream(stream);
}

void ClientSession::onPoolError(const ProxyError& error) {
    failRequest(error);
}

void ClientSession::attachUpstream(PoolStream stream) {
    Exchange& exchange = *exchange_;
    exchange.upstream_ = stream;
    stream.begin(*exchange_, exchange.head_request_);
    int64_t now = monotonicUs();
    exchange.record_.pool_wait_us = now - exchange.wait_start_us_;
    const StreamSetup setup = stream.setup();
    exchange.record_.reused = setup.reused;
    exchange.record_.dns_us = setup.dns_us;
    exchange.record_.connect_us = setup.connect_us;
    exchange.record_.tls_us = setup.tls_us;
    exchange.record_.tls_resumed = setup.tls_resumed;
    exchange.record_.upstream_conn_id = setup.connection_id;
    exchange.record_.upstream_conn_requests = setup.connection_requests;
    phase_ = Phase::Forwarding;
    disarmTimer();
    exchange.sent_us_ = now;
    exchange.request_sent_ = false;
    if (exchange.expect_continue_ && !exchange.request_body_started_ && !exchange.request_complete_)
        writeClient({"HTTP/1.1 100 Continue\r\n\r\n"});
    exchange.head_pending_ = true;
    if (exchange.in_feed_)
        return; // the parse loop that got us here sends the head with what follows
    feedParser();
    updateClientReading();
}

void ClientSession::flushUpstream() {
    Exchange& exchange = *exchange_;
    if (!exchange.upstream_)
        return;
    if (exchange.head_pending_ || !exchange.upstream_body_.empty()) {
        std::string_view head =
            exchange.head_pending_ ? std::string_view(exchange.request_head_bytes_) : "";
        exchange.head_pending_ = false;
        if (!exchange.upstream_body_.empty())
            exchange.request_body_started_ = true; // from now on the request cannot be replayed
        exchange.upstream_.write({head, exchange.upstream_body_});
        exchange.upstream_body_.clear();
        if (exchange.upstream_ &&
            exchange.upstream_.queued() > config().buffers.high_water)
            exchange.upstream_write_blocked_ = true;
    }
    if (exchange.upstream_ && exchange.request_complete_ && !exchange.request_sent_) {
        exchange.request_sent_ = true;
        exchange.upstream_.requestSent();
    }
}

void ClientSession::onUpstreamDrained(UpstreamConnection&) {
    exchange_->upstream_write_blocked_ = false;
    if (phase_ == Phase::Tunnel) {
        startReadingClient();
        return;
    }
    updateClientReading();
}

void ClientSession::onUpstreamResponseHead(UpstreamConnection& connection, MessageHead& head) {
    Exchange& exchange = *exchange_;
    if (phase_ != Phase::Forwarding)
        return;
    if (head.status < 200 && head.status != 101) {
        // Informational: 100 is ours to send (we answered Expect ourselves).
        if (head.status != 100 && !exchange.request_.isHttp10()) {
            std::string out;
            appendClientResponseHead(out, head, {BodyFraming::None, true, false, false,
                                                 config().via_name});
            writeClient({out});
        }
        return;
    }
    if (head.status == 101) {
        if (exchange.request_.upgrade) {
            upgradeToTunnel(connection, head);
            return;
        }
        onUpstreamError(connection, {502, "http_protocol_error", "101 without an Upgrade request"});
        return;
    }
    exchange.record_.ttfb_us = monotonicUs() - exchange.sent_us_;
    exchange.record_.status = head.status;
    exchange.response_framing_ =
        clientFraming(head, exchange.head_request_, exchange.request_.isHttp10());
    // Early answers: the rest of the request body is not ours to parse.
    if (exchange.response_framing_ == BodyFraming::CloseDelimited || !exchange.request_complete_)
        exchange.keep_alive_ = false;
    exchange.response_head_out_.clear();
    appendClientResponseHead(exchange.response_head_out_, head,
                             {exchange.response_framing_, exchange.keep_alive_,
                              exchange.request_.isHttp10(), false, config().via_name});
    exchange.response_head_sent_ = true;
    exchange.response_head_held_ = true; // written with the first body bytes or at the read's end
}

std::string_view ClientSession::takeHeldHead() {
    Exchange& exchange = *exchange_;
    if (!exchange.response_head_held_)
        return {};
    exchange.response_head_held_ = false;
    return exchange.response_head_out_; // the StreamWriter copies what it cannot send now
}

void ClientSession::onUpstreamBody(UpstreamConnection&, const char* data, size_t length) {
    Exchange& exchange = *exchange_;
    if (phase_ != Phase::Forwarding || !exchange.response_head_sent_)
        return;
    exchange.record_.bytes_out += length;
    if (exchange.response_framing_ == BodyFraming::Chunked) {
        char size_line[24];
        auto end = fmt::format_to(size_line, "{:x}\r\n", length);
        writeClient({takeHeldHead(),
                     std::string_view(size_line, static_cast<size_t>(end - size_line)),
                     std::string_view(data, length), "\r\n"});
    } else {
        writeClient({takeHeldHead(), std::string_view(data, length)});
    }
    // What the client did not take at once holds the origin back until it is written
    // (the kernel's buffers keep the origin busy meanwhile): one read's worth per
    // response, kept in the read block itself (the StreamWriter adopts it).
    if (clientWriteQueue() > 0)
        holdOriginForClient();
}

void ClientSession::onUpstreamResponseComplete(UpstreamConnection&) {
    Exchange& exchange = *exchange_;
    if (phase_ != Phase::Forwarding || !exchange.response_head_sent_)
        return;
    exchange.response_complete_ = true;
    bool chunked = exchange.response_framing_ == BodyFraming::Chunked;
    writeClient({takeHeldHead(), chunked ? "0\r\n\r\n" : ""});
    finishRequest();
}

void ClientSession::onUpstreamReadEnd(UpstreamConnection&) {
    if (exchange_->response_head_held_)
        writeClient({takeHeldHead()});
}

void ClientSession::onUpstreamError(UpstreamConnection& connection, const ProxyError& error) {
    Exchange& exchange = *exchange_;
    if (exchange.response_head_held_) {
        // The head is still ours (held for the body of the same read): the client has
        // seen nothing of this response, so it gets a clean 502 instead of a head
        // followed by a truncation.
        exchange.response_head_held_ = false;
        exchange.response_head_sent_ = false;
    }
    if (phase_ == Phase::Tunnel) {
        exchange.record_.error = error.token;
        exchange.record_.detail = error.detail;
        writeLog();
        end();
        return;
    }
    POOLED_ASSERT(exchange.upstream_ == connection, "errors come from the request's stream");
    bool stale = exchange.upstream_.failedAsStale(); // also a warm one on its first request
    discardUpstream(error.token);
    if (!exchange.response_head_sent_ && stale && exchange.record_.retries == 0 &&
        requestReplayable()) {
        // The classic stale keep-alive race: the origin closed this connection as we
        // reused it. Nothing was answered, nothing unrepeatable was sent: replay once.
        ++exchange.record_.retries;
        phase_ = Phase::Waiting;
        checkoutUpstream();
        return;
    }
    if (!exchange.response_head_sent_) {
        failRequest(error);
        return;
    }
    // Mid-body: the client must see the truncation, never a clean end.
    exchange.record_.error = "http_response_incomplete";
    exchange.record_.detail = error.detail;
    writeLog();
    end();
}

void ClientSession::releaseUpstream() {
    Exchange& exchange = *exchange_;
    PoolStream stream = std::exchange(exchange.upstream_, PoolStream{});
    if (!stream)
        return;
    stream.connection().setEvents(nullptr);
    worker_.pools().release(stream.connection(),
                            exchange.request_complete_ && exchange.response_complete_);
}

void ClientSession::discardUpstream(std::string_view cause) {
    Exchange& exchange = *exchange_;
    PoolStream stream = std::exchange(exchange.upstream_, PoolStream{});
    if (!stream)
        return;
    stream.connection().setEvents(nullptr);
    worker_.pools().discard(stream.connection(), cause);
}

std::string_view ClientSession::endCause() const {
    const std::string& error = exchange_->record_.error;
    return error.empty() ? std::string_view("client_closed") : std::string_view(error);
}

void ClientSession::failRequest(const ProxyError& error) {
    Exchange& exchange = *exchange_;
    if (exchange.queued())
        worker_.pools().cancel(*exchange_);
    if (exchange.upstream_)
        discardUpstream(error.token);
    exchange.upstream_body_.clear();
    exchange.head_pending_ = false;
    if (exchange.response_head_sent_) {
        exchange.record_.error = error.token;
        exchange.record_.detail = error.detail;
        writeLog();
        end();
        return;
    }
    // Keep the client connection only when the whole request was read and framed.
    bool close = !exchange.request_complete_ || !exchange.keep_alive_ ||
                 exchange.parser_.error() != ParseError::None || error.status == 400 ||
                 error.status == 431 || error.status == 414;
    sendError(error, close);
    writeLog();
    if (close || client_write_failed_) {
        closeAfterFlush();
        return;
    }
    nextRequest();
}

void ClientSession::finishRequest() {
    Exchange& exchange = *exchange_;
    releaseUpstream();
    writeLog();
    if (!exchange.keep_alive_ || draining_ || client_write_failed_) {
        closeAfterFlush();
        return;
    }
    nextRequest();
}

void ClientSession::nextRequest() {
    Exchange& exchange = *exchange_;
    exchange.parser_.reset();
    phase_ = Phase::Idle;
    exchange.resetRequest();
    armTimer(config().timeouts.client_idle.count(), Phase::Idle);
    if (!exchange.pending_input_.empty()) {
        // A pipelined request is already here.
        beginRequestHead();
        feedParser();
    }
    updateClientReading();
}

void ClientSession::writeLog() {
    if (exchange_->logged_)
        return;
    exchange_->logged_ = true;
    worker_.counters().requests++;
    worker_.metrics().onRequest(exchange_->record_, monotonicUs() - exchange_->request_start_us_);
    if (!worker_.accessLog().enabled())
        return;
    if (peer_.any.sa_family != AF_UNSPEC)
        exchange_->record_.client = formatSockaddr(&peer_.any);
    if (exchange_->record_.method.empty())
        exchange_->record_.method = exchange_->request_.method;
    exchange_->record_.total_us = monotonicUs() - exchange_->request_start_us_;
    worker_.accessLog().write(exchange_->record_);
}

} // namespace pooled
