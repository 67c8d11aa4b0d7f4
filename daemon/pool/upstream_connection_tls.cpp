// UpstreamConnection, TLS half: the handshake after TCP connect, decrypting reads into
// the llhttp path, and ciphertext out through the connection's writer. See
// upstream_connection.h and tls/tls_session.h.
#include "pool/upstream_connection.h"

#include "core/clock.h"
#include "core/worker.h"
#include "tls/tls_context.h"

namespace pooled {

void UpstreamConnection::startHandshake() {
    state_ = State::Handshaking;
    phase_start_us_ = monotonicUs();
    TlsSession::Transport& transport = *this;
    tls_session_ = std::make_unique<TlsSession>(worker_.tls(), key_, transport);
    // The connect timeout covers the handshake too: an origin that accepts and then
    // says nothing must not hold a request for ever.
    armTimer(worker_.config().timeouts.connect.count());
    timer_purpose_ = TimerPurpose::Handshake;
    startReading();
    continueHandshake();
}

void UpstreamConnection::continueHandshake() {
    switch (tls_session_->handshake()) {
    case TlsSession::Step::WantRead:
        return;
    case TlsSession::Step::Failed:
        fail(tls_session_->error());
        return;
    case TlsSession::Step::Done:
        break;
    }
    tls_us_ = monotonicUs() - phase_start_us_;
    tls_resumed_ = tls_session_->resumed();
    disarmTimer();
    timer_purpose_ = TimerPurpose::None;
    state_ = State::Idle; // connected, not yet used
    idle_since_us_ = monotonicUs();
    if (events_)
        events_->onUpstreamConnected(*this);
}

void UpstreamConnection::drainTls() {
    TlsContext& tls = worker_.tls();
    while (state_ != State::Closed && !read_paused_) {
        long n = tls_session_->read(tls.plainBuffer(), tls.plainBufferSize());
        if (n > 0) {
            onPlainData(tls.plainBuffer(), static_cast<size_t>(n));
            continue;
        }
        if (n == TlsSession::kWantRead)
            return;
        if (n == TlsSession::kPeerClosed) {
            // close_notify: the same as a FIN (the FIN itself may follow; it is not needed).
            if (reading_)
                uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
            reading_ = false;
            onEof();
            return;
        }
        ProxyError error = tls_session_->error();
        if (response_started_)
            error.token = "http_response_incomplete";
        fail(error);
        return;
    }
}

int UpstreamConnection::sendCiphertext(const char* data, size_t length) {
    if (!tcp_open_)
        return UV_EPIPE;
    return writePlain({std::string_view(data, length)});
}

} // namespace pooled
