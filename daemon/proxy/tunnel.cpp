// ClientSession, tunnels: CONNECT (opaque, or plain HTTP/1 inside it served
// through the pool) and Upgrade after a 101. See client_session.h.
#include "proxy/client_session.h"

#include "core/assert.h"
#include "core/clock.h"
#include "core/worker.h"
#include "pool/pool_manager.h"
#include "pool/upstream_connection.h"
#include "proxy/access_control.h"

#include <algorithm>

namespace pooled {

namespace {

// How long a CONNECT tunnel waits for the client's first bytes before it is
// treated as opaque (protocols where the server speaks first).
constexpr int64_t kSniffTimeoutMs = 1000;

enum class Sniff { Http, Opaque, NeedMore };

// A plain HTTP/1 request starts with an upper-case method token and a space;
// a TLS ClientHello starts with 0x16.
Sniff sniff(const std::string& bytes) {
    size_t i = 0;
    for (; i < bytes.size() && i < 16; ++i) {
        char c = bytes[i];
        if (c == ' ')
            return i > 0 ? Sniff::Http : Sniff::Opaque;
        if (c < 'A' || c > 'Z')
            return Sniff::Opaque;
    }
    return i >= 16 ? Sniff::Opaque : Sniff::NeedMore;
}

} // namespace

void ClientSession::handleConnect() {
    Exchange& exchange = *exchange_;
    auto authority = parseAuthority(exchange.request_.target, 0);
    exchange.record_.scheme = "tunnel";
    if (!authority) {
        failRequest({400, "http_request_error", "invalid CONNECT target"});
        return;
    }
    exchange.record_.host = authority->host;
    exchange.record_.port = authority->port;
    exchange.record_.path = exchange.request_.target;
    const auto& allowed = config().connect.allowed_ports;
    if (std::find(allowed.begin(), allowed.end(), authority->port) == allowed.end()) {
        exchange.keep_alive_ = false;
        worker_.metrics().onDenied("connect_port");
        failRequest({403, "http_request_denied",
                     "CONNECT to port " + std::to_string(authority->port) + " is not allowed"});
        return;
    }
    if (exchange.http_in_tunnel_) {
        failRequest({400, "http_request_error", "CONNECT inside a tunnel"});
        return;
    }
    if (std::string denied =
            destinationNameDenied(config().access, authority->host, authority->port);
        !denied.empty()) {
        exchange.keep_alive_ = false;
        worker_.metrics().onDenied("destination");
        failRequest({403, "http_request_denied", std::move(denied)});
        return;
    }
    // An IP literal is checked before the 200; a name is checked once resolved (the 200 is
    // sent by then, so a denied name only closes the tunnel).
    sockaddr_storage literal{};
    if (ipLiteral(authority->host, literal) &&
        !destinationAllowed(config().access, reinterpret_cast<const sockaddr*>(&literal))) {
        exchange.keep_alive_ = false;
        worker_.metrics().onDenied("destination");
        failRequest({403, "destination_ip_prohibited",
                     authority->host + ": address is not allowed"});
        return;
    }
    exchange.tunnel_authority_ = *authority;
    exchange.record_.status = 200;
    writeClient({"HTTP/1.1 200 Connection Established\r\n\r\n"});
    exchange.parser_.reset();
    phase_ = Phase::Sniffing;
    armTimer(kSniffTimeoutMs, Phase::Sniffing);
    if (!exchange.pending_input_.empty())
        onSniff();
}

void ClientSession::onSniff() {
    Exchange& exchange = *exchange_;
    switch (sniff(exchange.pending_input_)) {
    case Sniff::NeedMore:
        return;
    case Sniff::Opaque:
        openTunnel();
        return;
    case Sniff::Http:
        break;
    }
    // Plain HTTP inside the tunnel: its requests go through the pool like any other.
    exchange.record_.detail = "plain HTTP inside the tunnel: pooled";
    writeLog();
    exchange.http_in_tunnel_ = true;
    nextRequest();
}

void ClientSession::openTunnel() {
    Exchange& exchange = *exchange_;
    phase_ = Phase::Tunnel;
    stopReadingClient(); // early bytes wait in pending_input_ until connected
    exchange.wait_start_us_ = monotonicUs();
    exchange.tunnel_ = std::make_unique<UpstreamConnection>(
        worker_, PoolKey{"tcp", exchange.tunnel_authority_->host, exchange.tunnel_authority_->port},
        worker_.nextConnectionId());
    exchange.tunnel_->setEvents(exchange_.get());
    exchange.record_.upstream_conn_id = exchange.tunnel_->id();
    armTimer(config().timeouts.connect.count() + config().dns.timeout.count(),
             Phase::Tunnel);
    exchange.tunnel_->open();
}

void ClientSession::onUpstreamConnected(UpstreamConnection& connection) {
    Exchange& exchange = *exchange_;
    if (phase_ != Phase::Tunnel || &connection != exchange.tunnel_.get())
        return;
    exchange.record_.dns_us = connection.dnsUs();
    exchange.record_.connect_us = connection.connectUs();
    connection.enterRaw();
    armTimer(config().timeouts.tunnel_idle.count(), Phase::Tunnel);
    if (!exchange.pending_input_.empty()) {
        exchange.record_.bytes_in += exchange.pending_input_.size();
        connection.write({exchange.pending_input_});
        exchange.pending_input_.clear();
    }
    startReadingClient();
}

void ClientSession::onUpstreamConnectFailed(UpstreamConnection&, const ProxyError& error) {
    Exchange& exchange = *exchange_;
    // The 200 is already sent: all we can do is close, and say why in the log.
    exchange.record_.error = error.token;
    exchange.record_.detail = error.detail;
    writeLog();
    end();
}

void ClientSession::upgradeToTunnel(UpstreamConnection& connection, const MessageHead& head) {
    Exchange& exchange = *exchange_;
    // An upgraded connection is never pooled: it leaves its pool as the tunnel. A busy
    // connection leaves its pool only through its user (us) or with all the worker's
    // pools at shutdown, after which no event comes; so it is there to take.
    std::unique_ptr<UpstreamConnection> tunnel = worker_.pools().detach(connection);
    POOLED_ASSERT(tunnel, "a busy upstream connection stays in its pool until its user lets go");
    if (!tunnel) {
        // The client has seen nothing of the 101 yet; bytes of the new protocol may
        // follow the request, so the connection closes after the 502.
        exchange.keep_alive_ = false;
        failRequest({502, "proxy_internal_error", "the upgraded connection left its pool"});
        return;
    }
    exchange.record_.ttfb_us = monotonicUs() - exchange.sent_us_;
    exchange.record_.status = 101;
    std::string out;
    appendClientResponseHead(out, head,
                             {BodyFraming::None, true, false, true, config().via_name});
    exchange.response_head_sent_ = true;
    writeClient({out});
    exchange.upstream_ = PoolStream{};
    exchange.tunnel_ = std::move(tunnel);
    exchange.tunnel_->setEvents(exchange_.get());
    exchange.tunnel_->enterRaw();
    phase_ = Phase::Tunnel;
    armTimer(config().timeouts.tunnel_idle.count(), Phase::Tunnel);
    if (!exchange.pending_input_.empty()) {
        exchange.record_.bytes_in += exchange.pending_input_.size();
        exchange.tunnel_->write({exchange.pending_input_});
        exchange.pending_input_.clear();
    }
    startReadingClient();
}

void ClientSession::onUpstreamRaw(UpstreamConnection&, const char* data, size_t length) {
    if (phase_ != Phase::Tunnel)
        return;
    exchange_->record_.bytes_out += length;
    armTimer(config().timeouts.tunnel_idle.count(), Phase::Tunnel);
    writeClient({std::string_view(data, length)});
}

void ClientSession::onUpstreamEof(UpstreamConnection&) {
    exchange_->tunnel_upstream_eof_ = true;
    closeTunnelIfDone();
}

void ClientSession::onTunnelClientData(const char* data, size_t length) {
    Exchange& exchange = *exchange_;
    if (!exchange.tunnel_ || exchange.tunnel_->state() != UpstreamConnection::State::Raw) {
        exchange.pending_input_.append(data, length);
        stopReadingClient();
        return;
    }
    exchange.record_.bytes_in += length;
    armTimer(config().timeouts.tunnel_idle.count(), Phase::Tunnel);
    exchange.tunnel_->write({std::string_view(data, length)});
    if (exchange.tunnel_->writeQueueSize() > config().buffers.high_water) {
        exchange.upstream_write_blocked_ = true;
        stopReadingClient();
    }
}

void ClientSession::onTunnelClientEof() {
    Exchange& exchange = *exchange_;
    exchange.tunnel_client_eof_ = true;
    if (exchange.tunnel_)
        exchange.tunnel_->shutdownWrite();
    closeTunnelIfDone();
}

void ClientSession::closeTunnelIfDone() {
    // The client's EOF only half-closes toward the origin, whose answer may still
    // come; the origin's EOF ends the tunnel once what it sent is flushed.
    if (exchange_->tunnel_upstream_eof_) {
        writeLog();
        closeAfterFlush();
    }
}

} // namespace pooled
