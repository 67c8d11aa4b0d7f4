// UpstreamConnection, TLS half: the handshake after TCP connect, decrypting reads into
// the llhttp path, and ciphertext out through the connection's writer. See
// upstream_connection.h and tls/tls_session.h.
#include "pool/upstream_connection.h"

#include "core/clock.h"
#include "core/worker.h"
#include "tls/handshake_job.h"
#include "tls/tls_context.h"

namespace pooled {

void UpstreamConnection::startHandshake() {
    state_ = State::Handshaking;
    phase_start_us_ = monotonicUs();
    TlsSession::Transport& transport = *this;
    tls_session_ = std::make_shared<TlsSession>(worker_.tls(), key_, transport);
    // The connect timeout covers the handshake too: an origin that accepts and then
    // says nothing must not hold a request for ever.
    armTimer(worker_.config().timeouts.connect.count());
    timer_purpose_ = TimerPurpose::Handshake;
    startReading();
    continueHandshake();
}

void UpstreamConnection::continueHandshake() {
    // New input is lent to the session: the cheap steps run here, the costly ones (a
    // full handshake's certificate checks and key exchange) on the thread pool.
    int rc = tls_session_->runSteps(true);
    if (rc != TlsSession::kPoolNext) {
        handshakeStepped(rc);
        return;
    }
    // The loop's read buffer is reused by the next read: nothing may point into it.
    tls_session_->release();
    tls_job_ = HandshakeJob::start(worker_.loop(), worker_.tls().handshakeQueue(), tls_session_,
                                   [this](int job_rc) {
                                       tls_job_ = nullptr;
                                       onHandshakeJobDone(job_rc);
                                   });
}

void UpstreamConnection::onHandshakeJobDone(int rc) {
    if (state_ != State::Handshaking)
        return; // failed meanwhile (the handshake timeout): nothing more to send or read
    tls_session_->flushDeferredSends();
    // What arrived meanwhile goes in before the end of the stream is looked at: an
    // alert in it is a better error than "closed the connection".
    std::string backlog = std::move(tls_backlog_);
    tls_backlog_.clear();
    tls_session_->lend(backlog.data(), backlog.size());
    handshakeStepped(rc);
    // Another round only for new bytes: half a record left must not spin.
    if (state_ == State::Handshaking && !backlog.empty())
        continueHandshake();
    else if (state_ != State::Closed && state_ != State::Handshaking)
        drainTls();
    if (!tls_job_) // else a new job owns the session, and continueHandshake released it
        tls_session_->release(); // `backlog` goes now
    if (!tls_job_ && tls_input_end_ != 0 && state_ != State::Closed) {
        int status = tls_input_end_;
        tls_input_end_ = 0;
        onReadEnd(status);
    }
}

void UpstreamConnection::handshakeStepped(int rc) {
    switch (tls_session_->finishSteps(rc)) {
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
