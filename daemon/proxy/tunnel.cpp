// ClientSession, tunnels: CONNECT (opaque, or plain HTTP/1 inside it served
// through the pool) and Upgrade after a 101. See client_session.h.
#include "proxy/client_session.h"

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
    auto authority = parseAuthority(request_.target, 0);
    record_.scheme = "tunnel";
    if (!authority) {
        failRequest({400, "http_request_error", "invalid CONNECT target"});
        return;
    }
    record_.host = authority->host;
    record_.port = authority->port;
    record_.path = request_.target;
    const auto& allowed = config().connect.allowed_ports;
    if (std::find(allowed.begin(), allowed.end(), authority->port) == allowed.end()) {
        keep_alive_ = false;
        worker_.metrics().onDenied("connect_port");
        failRequest({403, "http_request_denied",
                     "CONNECT to port " + std::to_string(authority->port) + " is not allowed"});
        return;
    }
    if (http_in_tunnel_) {
        failRequest({400, "http_request_error", "CONNECT inside a tunnel"});
        return;
    }
    if (std::string denied =
            destinationNameDenied(config().access, authority->host, authority->port);
        !denied.empty()) {
        keep_alive_ = false;
        worker_.metrics().onDenied("destination");
        failRequest({403, "http_request_denied", std::move(denied)});
        return;
    }
    // An IP literal is checked before the 200; a name is checked once resolved (the 200 is
    // sent by then, so a denied name only closes the tunnel).
    sockaddr_storage literal{};
    if (ipLiteral(authority->host, literal) &&
        !destinationAllowed(config().access, reinterpret_cast<const sockaddr*>(&literal))) {
        keep_alive_ = false;
        worker_.metrics().onDenied("destination");
        failRequest({403, "destination_ip_prohibited",
                     authority->host + ": address is not allowed"});
        return;
    }
    tunnel_authority_ = *authority;
    record_.status = 200;
    writeClient({"HTTP/1.1 200 Connection Established\r\n\r\n"});
    parser_.reset();
    phase_ = Phase::Sniffing;
    armTimer(kSniffTimeoutMs, Phase::Sniffing);
    if (!pending_input_.empty())
        onSniff();
}

void ClientSession::onSniff() {
    switch (sniff(pending_input_)) {
    case Sniff::NeedMore:
        return;
    case Sniff::Opaque:
        openTunnel();
        return;
    case Sniff::Http:
        break;
    }
    // Plain HTTP inside the tunnel: its requests go through the pool like any other.
    record_.detail = "plain HTTP inside the tunnel: pooled";
    writeLog();
    http_in_tunnel_ = true;
    nextRequest();
}

void ClientSession::openTunnel() {
    phase_ = Phase::Tunnel;
    stopReadingClient(); // early bytes wait in pending_input_ until connected
    wait_start_us_ = monotonicUs();
    tunnel_ = std::make_unique<UpstreamConnection>(
        worker_, PoolKey{"tcp", tunnel_authority_->host, tunnel_authority_->port},
        worker_.nextConnectionId());
    tunnel_->setEvents(this);
    record_.upstream_conn_id = tunnel_->id();
    armTimer(config().timeouts.connect.count() + config().dns.timeout.count(),
             Phase::Tunnel);
    tunnel_->open();
}

void ClientSession::onUpstreamConnected(UpstreamConnection& connection) {
    if (phase_ != Phase::Tunnel || &connection != tunnel_.get())
        return;
    record_.dns_us = connection.dnsUs();
    record_.connect_us = connection.connectUs();
    connection.enterRaw();
    armTimer(config().timeouts.tunnel_idle.count(), Phase::Tunnel);
    if (!pending_input_.empty()) {
        record_.bytes_in += pending_input_.size();
        connection.write({pending_input_});
        pending_input_.clear();
    }
    startReadingClient();
}

void ClientSession::onUpstreamConnectFailed(UpstreamConnection&, const ProxyError& error) {
    // The 200 is already sent: all we can do is close, and say why in the log.
    record_.error = error.token;
    record_.detail = error.detail;
    writeLog();
    end();
}

void ClientSession::upgradeToTunnel(UpstreamConnection& connection, const MessageHead& head) {
    record_.ttfb_us = monotonicUs() - sent_us_;
    record_.status = 101;
    std::string out;
    appendClientResponseHead(out, head,
                             {BodyFraming::None, true, false, true, config().via_name});
    response_head_sent_ = true;
    writeClient({out});
    upstream_ = nullptr;
    tunnel_ = worker_.pools().detach(connection); // an upgraded connection is never pooled
    tunnel_->setEvents(this);
    tunnel_->enterRaw();
    phase_ = Phase::Tunnel;
    armTimer(config().timeouts.tunnel_idle.count(), Phase::Tunnel);
    if (!pending_input_.empty()) {
        record_.bytes_in += pending_input_.size();
        tunnel_->write({pending_input_});
        pending_input_.clear();
    }
    startReadingClient();
}

void ClientSession::onUpstreamRaw(UpstreamConnection&, const char* data, size_t length) {
    if (phase_ != Phase::Tunnel)
        return;
    record_.bytes_out += length;
    armTimer(config().timeouts.tunnel_idle.count(), Phase::Tunnel);
    writeClient({std::string_view(data, length)});
}

void ClientSession::onUpstreamEof(UpstreamConnection&) {
    tunnel_upstream_eof_ = true;
    closeTunnelIfDone();
}

void ClientSession::onTunnelClientData(const char* data, size_t length) {
    if (!tunnel_ || tunnel_->state() != UpstreamConnection::State::Raw) {
        pending_input_.append(data, length);
        stopReadingClient();
        return;
    }
    record_.bytes_in += length;
    armTimer(config().timeouts.tunnel_idle.count(), Phase::Tunnel);
    tunnel_->write({std::string_view(data, length)});
    if (tunnel_->writeQueueSize() > config().buffers.high_water) {
        upstream_write_blocked_ = true;
        stopReadingClient();
    }
}

void ClientSession::onTunnelClientEof() {
    tunnel_client_eof_ = true;
    if (tunnel_)
        tunnel_->shutdownWrite();
    closeTunnelIfDone();
}

void ClientSession::closeTunnelIfDone() {
    // The client's EOF only half-closes toward the origin, whose answer may still
    // come; the origin's EOF ends the tunnel once what it sent is flushed.
    if (tunnel_upstream_eof_) {
        writeLog();
        closeAfterFlush();
    }
}

} // namespace pooled
