// One TCP connection to an origin: resolve, connect (each address in turn), for
// https a TLS handshake (tls/tls_session.h), write requests, frame responses with
// llhttp, watch it while idle, or carry raw bytes once it became a tunnel. It reports
// to whoever drives it (UpstreamEvents). With TLS, reads are decrypted before llhttp
// sees them and writes encrypted on their way to the same stream.
#pragma once

#include "core/closable.h"
#include "http/parser.h"
#include "net/stream_writer.h"
#include "pool/pool_key.h"
#include "pool/upstream_events.h"
#include "tls/tls_session.h"

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pooled {

class HandshakeJob;
class Worker;

class UpstreamConnection : public Closable,
                           private HttpParser::Handler,
                           private TlsSession::Transport {
public:
    enum class State { New, Resolving, Connecting, Handshaking, Idle, Busy, Raw, Closed };

    UpstreamConnection(Worker& worker, PoolKey key, uint64_t id);
    ~UpstreamConnection() override;

    void setEvents(UpstreamEvents* events) { events_ = events; }
    UpstreamEvents* events() const { return events_; }

    // Resolve and connect; reports onUpstreamConnected or onUpstreamConnectFailed.
    void open();

    // Busy: a request begins on this connection.
    void beginRequest(bool head_request);
    // Queue bytes; false if the stream refused them (the connection is then dead
    // and an error event follows on a later turn).
    bool write(std::initializer_list<std::string_view> parts);
    bool write(std::string_view bytes) { return write({bytes}); }
    size_t writeQueueSize() const;
    // The request is fully sent: the first-byte deadline starts now.
    void requestSent();
    void pauseReading();
    void resumeReading();
    // True while the origin allows another request after this response.
    bool responseAllowsReuse() const;
    bool responseStarted() const { return response_started_; }

    // Idle: keep reading so a close by the origin is noticed at once.
    void enterIdle(int64_t timeout_ms);
    // Tunnel: from now on bytes flow raw (onUpstreamRaw / onUpstreamEof).
    void enterRaw();
    void shutdownWrite();

    void close(std::function<void()> on_closed) override;

    State state() const { return state_; }
    const PoolKey& key() const { return key_; }
    uint64_t id() const { return id_; }
    // The address connected to (valid once connected); access rules may change on reload.
    const sockaddr* peerAddress() const {
        return next_address_ == 0 || next_address_ > addresses_.size()
                   ? nullptr
                   : reinterpret_cast<const sockaddr*>(&addresses_[next_address_ - 1]);
    }
    uint32_t requests() const { return requests_; }
    int64_t createdUs() const { return created_us_; }
    int64_t idleSinceUs() const { return idle_since_us_; }
    uint64_t releasedTick() const { return released_tick_; }
    void setReleasedTick(uint64_t tick) { released_tick_ = tick; }
    int64_t expiresUs() const { return expires_us_; }
    void setExpiresUs(int64_t us) { expires_us_ = us; }
    int64_t dnsUs() const { return dns_us_; }
    int64_t connectUs() const { return connect_us_; }
    // TLS handshake time; -1 for plain connections.
    int64_t tlsUs() const { return tls_us_; }
    bool tls() const { return key_.scheme == "https"; }
    bool tlsResumed() const { return tls_resumed_; }
    // Keep-Alive: timeout=N of the last response, in ms; -1 when absent.
    int64_t keepAliveHintMs() const { return keepalive_hint_ms_; }
    bool everUsed() const { return requests_ > 0; }
    // It waited in a pool's idle list (warm after connect, or between requests), where
    // the origin may have closed it unseen: a failure before any answer may be replayed.
    bool hasBeenIdle() const { return been_idle_; }

private:
    // HttpParser::Handler
    int onHead() override;
    int onBody(const char* data, size_t length) override;
    int onMessageComplete() override;

    void onResolved(bool ok, const std::string& error, std::vector<sockaddr_storage> addresses);
    void connectNext();
    void failConnect(const ProxyError& error);
    void fail(const ProxyError& error);
    void startReading();
    void onData(const char* data, size_t length);
    void onPlainData(const char* data, size_t length);
    // TLS: start / continue the handshake, then pull plaintext while not paused. The
    // costly steps run on the thread pool (tls/handshake_job.h); meanwhile input waits
    // in tls_backlog_ and the end of the stream in tls_input_end_.
    void startHandshake();
    void continueHandshake();
    void onHandshakeJobDone(int rc);
    void handshakeStepped(int rc);
    // Still before the origin's Finished: connecting, or a False Started request out.
    bool inHandshake() const {
        return state_ == State::Handshaking ||
               (state_ == State::Busy && tls_session_ && !tls_session_->established());
    }
    void drainTls();
    int sendCiphertext(const char* data, size_t length) override;
    int writePlain(std::initializer_list<std::string_view> parts);
    void onEof();
    void onReadEnd(int status);
    void armTimer(int64_t ms);
    void disarmTimer();

    static void onConnect(uv_connect_t* req, int status);
    static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void onTimer(uv_timer_t* timer);
    static void onWriteDone(void* owner, int status);

    enum class TimerPurpose { None, Connect, Handshake, FirstByte, Read, Idle };

    Worker& worker_;
    PoolKey key_;
    uint64_t id_;
    State state_ = State::New;
    UpstreamEvents* events_ = nullptr;
    uv_tcp_t tcp_;
    StreamWriter writer_{this, &UpstreamConnection::onWriteDone};
    uv_timer_t timer_;
    uv_connect_t connect_req_;
    HandleCloser closer_;
    HttpParser parser_;
    TimerPurpose timer_purpose_ = TimerPurpose::None;
    uint64_t timer_due_ = 0;     // loop time (ms) timer_purpose_ is due at; 0 = disarmed
    uint64_t timer_set_for_ = 0; // loop time the uv timer fires at; 0 = not running
    bool tcp_open_ = false;
    bool tcp_closing_ = false; // a failed attempt's socket is closing
    std::function<void()> pending_on_closed_;
    bool reading_ = false;
    bool read_paused_ = false;
    uint64_t resolve_id_ = 0;
    std::vector<sockaddr_storage> addresses_;
    size_t next_address_ = 0;
    std::string last_connect_error_;
    int last_connect_status_ = 0;

    uint32_t requests_ = 0;
    int64_t created_us_;
    int64_t phase_start_us_ = 0;
    int64_t idle_since_us_ = 0;
    int64_t expires_us_ = 0;
    uint64_t released_tick_ = 0;
    int64_t dns_us_ = -1;
    int64_t connect_us_ = -1;
    int64_t tls_us_ = -1;
    bool tls_resumed_ = false;
    // Shared with a running HandshakeJob: it outlives us if we go first.
    std::shared_ptr<TlsSession> tls_session_;
    HandshakeJob* tls_job_ = nullptr;
    std::string tls_backlog_; // ciphertext read while the job owns the session
    int tls_input_end_ = 0;   // EOF or a read error met meanwhile
    bool tls_drain_scheduled_ = false;
    std::string tls_scratch_; // small parts joined into one record
    // Deferred work checks this: the connection may be freed before it runs.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    int64_t keepalive_hint_ms_ = -1;
    bool response_started_ = false;
    bool response_complete_ = false;
    bool informational_ = false;
    bool reusable_ = true;
    bool been_idle_ = false;
    size_t write_high_water_;
    size_t write_low_water_;
    bool above_high_water_ = false;
};

} // namespace pooled
