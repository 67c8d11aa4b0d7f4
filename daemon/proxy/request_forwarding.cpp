// ClientSession, upstream half: one request through the pool and its response
// back to the client, with one replay on a fresh connection when a reused one
// fails before answering. See client_session.h.
#include "proxy/client_session.h"

#include "core/clock.h"
#include "core/worker.h"
#include "observe/access_log.h"
#include "pool/pool_manager.h"
#include "pool/upstream_connection.h"
#include "proxy/access_control.h"
#include "proxy/auth_check.h"
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
    record_.method = request_.method;
    record_.client = client_address_;
    head_request_ = request_.method == "HEAD";
    keep_alive_ = request_.keep_alive && !draining_;
    if (const char* problem = hostHeaderProblem(request_)) {
        failRequest({400, "http_request_error", problem});
        return;
    }
    const Header* expect = request_.find("expect");
    expect_continue_ = expect && equalsIgnoreCase(expect->value, "100-continue") &&
                       !request_.isHttp10();
    if (expect && !expect_continue_) {
        failRequest({417, "http_request_error", "unsupported expectation"});
        return;
    }
    // Requests inside a CONNECT tunnel were authorized with the CONNECT itself.
    const auto& auth = config().access.proxy_auth;
    if (auth.credentials && !http_in_tunnel_) {
        const Header* credentials = request_.find("proxy-authorization");
        if (!credentials) {
            denyProxyAuth("no proxy credentials");
            return;
        }
        if (!auth.credentials->verified(credentials->value)) {
            // Not seen yet: hash it on the thread pool; the body waits (Phase::Waiting).
            phase_ = Phase::Waiting;
            auth_check_ = AuthCheck::start(worker_.loop(), auth.credentials, credentials->value,
                                           [this](bool ok) { onAuthChecked(ok); });
            return;
        }
    }
    continueRequestHead();
}

void ClientSession::onAuthChecked(bool ok) {
    auth_check_ = nullptr;
    if (!ok) {
        denyProxyAuth("wrong proxy credentials");
        return;
    }
    continueRequestHead();
    feedParser(); // body bytes read with the head
}

void ClientSession::denyProxyAuth(const char* detail) {
    worker_.metrics().onDenied("proxy_auth");
    record_.status = 407;
    record_.error = "http_request_denied";
    record_.detail = detail;
    writeClient({renderProxyAuthRequired(config().via_name, config().access.proxy_auth.realm)});
    writeLog();
    closeAfterFlush();
}

void ClientSession::continueRequestHead() {
    if (request_.method == "CONNECT") {
        handleConnect();
        return;
    }
    auto target = parseRequestTarget(request_.method, request_.target);
    if (!target) {
        failRequest({400, "http_request_error", "invalid request target"});
        return;
    }
    target_ = std::move(*target);
    ProxyError error;
    RouteContext context{config(), listener_route_,
                         http_in_tunnel_ && tunnel_authority_ ? &*tunnel_authority_ : nullptr};
    auto decision = routeRequest(context, request_, target_, error);
    if (!decision) {
        failRequest(error);
        return;
    }
    route_ = std::move(*decision);
    record_.scheme = route_.key.scheme;
    record_.host = route_.key.host;
    record_.port = route_.key.port;
    // Name and port rules apply to where the request goes (routes included) before any
    // lookup; address rules wait for the resolved addresses (UpstreamConnection).
    if (std::string denied = destinationNameDenied(config().access, route_.key.host,
                                                   route_.key.port);
        !denied.empty()) {
        worker_.metrics().onDenied("destination");
        failRequest({403, "http_request_denied", std::move(denied)});
        return;
    }
    record_.path = route_.path;
    record_.route = route_.route ? route_.route->name : "";
    request_head_bytes_.clear();
    appendUpstreamRequestHead(request_head_bytes_, request_,
                              {route_.path, route_.authority, config().via_name,
                               request_.upgrade});
    phase_ = Phase::Waiting;
    wait_start_us_ = monotonicUs();
    checkoutUpstream();
}

bool ClientSession::requestReplayable() const {
    return !request_body_started_ && idempotent(request_.method);
}

void ClientSession::checkoutUpstream() {
    bool has_body = request_.chunked || request_.content_length > 0;
    prefer_fresh = has_body || !idempotent(request_.method);
    require_fresh = record_.retries > 0;
    Checkout result = worker_.pools().checkout(route_.key, *this);
    switch (result.kind) {
    case Checkout::Kind::Ready:
        attachUpstream(*result.connection);
        return;
    case Checkout::Kind::Queued:
        armTimer(config().pool.queue_timeout.count(), Phase::Waiting);
        return;
    case Checkout::Kind::Failed:
        failRequest(result.error);
        return;
    }
}

void ClientSession::onPoolConnection(UpstreamConnection& connection) {
    attachUpstream(connection);
}

void ClientSession::onPoolError(const ProxyError& error) {
    failRequest(error);
}

void ClientSession::attachUpstream(UpstreamConnection& connection) {
    upstream_ = &connection;
    connection.setEvents(this);
    connection.beginRequest(head_request_);
    int64_t now = monotonicUs();
    record_.pool_wait_us = now - wait_start_us_;
    record_.reused = connection.requests() > 1;
    if (!record_.reused) {
        record_.dns_us = connection.dnsUs();
        record_.connect_us = connection.connectUs();
        record_.tls_us = connection.tlsUs();
        record_.tls_resumed = connection.tlsResumed();
    } else if (connection.tls()) {
        record_.tls_us = 0; // no handshake for this request
        record_.tls_resumed = false;
    }
    record_.upstream_conn_id = connection.id();
    record_.upstream_conn_requests = connection.requests();
    phase_ = Phase::Forwarding;
    disarmTimer();
    sent_us_ = now;
    request_sent_ = false;
    if (expect_continue_ && !request_body_started_ && !request_complete_)
        writeClient({"HTTP/1.1 100 Continue\r\n\r\n"});
    head_pending_ = true;
    if (in_feed_)
        return; // the parse loop that got us here sends the head with what follows
    feedParser();
    updateClientReading();
}

void ClientSession::flushUpstream() {
    if (!upstream_)
        return;
    if (head_pending_ || !upstream_body_.empty()) {
        std::string_view head = head_pending_ ? std::string_view(request_head_bytes_) : "";
        head_pending_ = false;
        if (!upstream_body_.empty())
            request_body_started_ = true; // from now on the request cannot be replayed
        upstream_->write({head, upstream_body_});
        upstream_body_.clear();
        if (upstream_ && upstream_->writeQueueSize() > config().buffers.high_water)
            upstream_write_blocked_ = true;
    }
    if (upstream_ && request_complete_ && !request_sent_) {
        request_sent_ = true;
        upstream_->requestSent();
    }
}

void ClientSession::onUpstreamDrained(UpstreamConnection&) {
    upstream_write_blocked_ = false;
    if (phase_ == Phase::Tunnel) {
        startReadingClient();
        return;
    }
    updateClientReading();
}

void ClientSession::onUpstreamResponseHead(UpstreamConnection& connection, MessageHead& head) {
    if (phase_ != Phase::Forwarding)
        return;
    if (head.status < 200 && head.status != 101) {
        // Informational: 100 is ours to send (we answered Expect ourselves).
        if (head.status != 100 && !request_.isHttp10()) {
            std::string out;
            appendClientResponseHead(out, head, {BodyFraming::None, true, false, false,
                                                 config().via_name});
            writeClient({out});
        }
        return;
    }
    if (head.status == 101) {
        if (request_.upgrade) {
            upgradeToTunnel(connection, head);
            return;
        }
        onUpstreamError(connection, {502, "http_protocol_error", "101 without an Upgrade request"});
        return;
    }
    record_.ttfb_us = monotonicUs() - sent_us_;
    record_.status = head.status;
    response_framing_ = clientFraming(head, head_request_, request_.isHttp10());
    if (response_framing_ == BodyFraming::CloseDelimited || !request_complete_)
        keep_alive_ = false; // early answers: the rest of the request body is not ours to parse
    response_head_out_.clear();
    appendClientResponseHead(response_head_out_, head,
                             {response_framing_, keep_alive_, request_.isHttp10(), false,
                              config().via_name});
    response_head_sent_ = true;
    response_head_held_ = true; // written with the first body bytes or at the read's end
}

std::string_view ClientSession::takeHeldHead() {
    if (!response_head_held_)
        return {};
    response_head_held_ = false;
    return response_head_out_; // writeParts copies whatever the kernel does not take
}

void ClientSession::onUpstreamBody(UpstreamConnection&, const char* data, size_t length) {
    if (phase_ != Phase::Forwarding || !response_head_sent_)
        return;
    record_.bytes_out += length;
    if (response_framing_ == BodyFraming::Chunked) {
        char size_line[24];
        auto end = fmt::format_to(size_line, "{:x}\r\n", length);
        writeClient({takeHeldHead(), std::string_view(size_line, static_cast<size_t>(end - size_line)),
                     std::string_view(data, length), "\r\n"});
    } else {
        writeClient({takeHeldHead(), std::string_view(data, length)});
    }
    if (upstream_ && !client_write_blocked_ && clientWriteQueue() > 0) {
        // What the client did not take at once holds the origin back until it is
        // written (the kernel's buffers keep the origin busy meanwhile): one read's
        // worth per response, kept in the read block itself (writeParts adopts it).
        client_write_blocked_ = true;
        armTimer(config().timeouts.client_idle.count(), Phase::Forwarding);
        upstream_->pauseReading();
    }
}

void ClientSession::onUpstreamResponseComplete(UpstreamConnection&) {
    if (phase_ != Phase::Forwarding || !response_head_sent_)
        return;
    response_complete_ = true;
    writeClient({takeHeldHead(), response_framing_ == BodyFraming::Chunked ? "0\r\n\r\n" : ""});
    finishRequest();
}

void ClientSession::onUpstreamReadEnd(UpstreamConnection&) {
    if (response_head_held_)
        writeClient({takeHeldHead()});
}

void ClientSession::onUpstreamError(UpstreamConnection& connection, const ProxyError& error) {
    if (response_head_held_)
        writeClient({takeHeldHead()}); // as if written at once: the error handling below
                                       // treats the response as started
    if (phase_ == Phase::Tunnel) {
        record_.error = error.token;
        record_.detail = error.detail;
        writeLog();
        end();
        return;
    }
    bool was_idle = connection.hasBeenIdle(); // also a warm one on its first request
    bool started = connection.responseStarted();
    releaseUpstream(false);
    if (!response_head_sent_ && was_idle && !started && record_.retries == 0 &&
        requestReplayable()) {
        // The classic stale keep-alive race: the origin closed this connection as we
        // reused it. Nothing was answered, nothing unrepeatable was sent: replay once.
        ++record_.retries;
        phase_ = Phase::Waiting;
        checkoutUpstream();
        return;
    }
    if (!response_head_sent_) {
        failRequest(error);
        return;
    }
    // Mid-body: the client must see the truncation, never a clean end.
    record_.error = "http_response_incomplete";
    record_.detail = error.detail;
    writeLog();
    end();
}

void ClientSession::releaseUpstream(bool reusable) {
    UpstreamConnection* connection = upstream_;
    upstream_ = nullptr;
    if (!connection)
        return;
    connection->setEvents(nullptr);
    if (reusable)
        worker_.pools().release(*connection, true);
    else
        worker_.pools().discard(*connection);
}

void ClientSession::failRequest(const ProxyError& error) {
    if (queued())
        worker_.pools().cancel(*this);
    if (upstream_)
        releaseUpstream(false);
    upstream_body_.clear();
    head_pending_ = false;
    if (response_head_sent_) {
        record_.error = error.token;
        record_.detail = error.detail;
        writeLog();
        end();
        return;
    }
    // Keep the client connection only when the whole request was read and framed.
    bool close = !request_complete_ || !keep_alive_ || parser_.error() != ParseError::None ||
                 error.status == 400 || error.status == 431 || error.status == 414;
    sendError(error, close);
    writeLog();
    if (close) {
        closeAfterFlush();
        return;
    }
    nextRequest();
}

void ClientSession::finishRequest() {
    bool reusable = request_complete_ && response_complete_;
    releaseUpstream(reusable);
    writeLog();
    if (!keep_alive_ || draining_) {
        closeAfterFlush();
        return;
    }
    nextRequest();
}

void ClientSession::nextRequest() {
    parser_.reset();
    phase_ = Phase::Idle;
    request_.clear();
    route_ = RouteDecision{};
    request_complete_ = false;
    request_body_started_ = false;
    request_sent_ = false;
    response_head_sent_ = false;
    response_head_held_ = false;
    response_complete_ = false;
    upstream_write_blocked_ = false;
    response_framing_ = BodyFraming::None;
    logged_ = false;
    armTimer(config().timeouts.client_idle.count(), Phase::Idle);
    if (!pending_input_.empty()) {
        // A pipelined request is already here.
        beginRequestHead();
        feedParser();
    }
    updateClientReading();
}

void ClientSession::writeLog() {
    if (logged_)
        return;
    logged_ = true;
    worker_.counters().requests++;
    worker_.metrics().onRequest(record_, monotonicUs() - request_start_us_);
    if (!worker_.accessLog().enabled())
        return;
    record_.client = client_address_;
    if (record_.method.empty())
        record_.method = request_.method;
    record_.total_us = monotonicUs() - request_start_us_;
    worker_.accessLog().write(record_);
}

} // namespace pooled
