// UpstreamConnection: see upstream_connection.h.
#include "pool/upstream_connection.h"

#include "core/clock.h"
#include "core/worker.h"
#include "dns/resolver.h"
#include "proxy/access_control.h"
#include "tls/handshake_job.h"
#include "tls/tls_context.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>

namespace pooled {

namespace {

HttpParser::Limits responseLimits(const Config& config) {
    HttpParser::Limits limits;
    limits.max_head_size = config.limits.max_response_header_size;
    limits.max_header_count = config.limits.max_header_count * 2;
    limits.max_uri_length = config.limits.max_uri_length;
    return limits;
}

ProxyError connectError(int status, const std::string& detail) {
    if (status == UV_ETIMEDOUT)
        return {504, "connection_timeout", detail};
    if (status == UV_ECONNREFUSED)
        return {502, "connection_refused", detail};
    if (status == UV_ENETUNREACH || status == UV_EHOSTUNREACH)
        return {502, "destination_unavailable", detail};
    return {502, "connection_refused", detail};
}

// "timeout=5, max=100" -> 5000
int64_t parseKeepAliveTimeoutMs(std::string_view value) {
    size_t pos = 0;
    while ((pos = value.find("timeout", pos)) != std::string_view::npos) {
        size_t eq = value.find('=', pos);
        if (eq == std::string_view::npos)
            return -1;
        size_t start = eq + 1;
        while (start < value.size() && value[start] == ' ')
            ++start;
        int seconds = 0;
        auto [ptr, ec] = std::from_chars(value.data() + start, value.data() + value.size(), seconds);
        if (ec == std::errc{} && seconds >= 0)
            return static_cast<int64_t>(seconds) * 1000;
        pos = eq;
    }
    return -1;
}

} // namespace

UpstreamConnection::UpstreamConnection(Worker& worker, PoolKey key, uint64_t id)
    : worker_(worker), key_(std::move(key)), id_(id),
      parser_(HttpParser::Kind::Response, *this, responseLimits(worker.config())),
      created_us_(monotonicUs()), write_high_water_(worker.config().buffers.high_water),
      write_low_water_(worker.config().buffers.low_water) {
    uv_timer_init(worker_.loop(), &timer_);
    timer_.data = this;
}

UpstreamConnection::~UpstreamConnection() {
    alive_.reset();
    if (tls_job_)
        tls_job_->cancel();
    if (resolve_id_ != 0)
        worker_.resolver().cancel(resolve_id_);
}

void UpstreamConnection::open() {
    state_ = State::Resolving;
    phase_start_us_ = monotonicUs();
    resolve_id_ = worker_.resolver().resolve(key_.host, key_.port, [this](const DnsResult& r) {
        resolve_id_ = 0;
        onResolved(r.ok, r.error, r.addresses);
    });
}

void UpstreamConnection::onResolved(bool ok, const std::string& error,
                                    std::vector<sockaddr_storage> addresses) {
    dns_us_ = monotonicUs() - phase_start_us_;
    if (!ok || addresses.empty()) {
        failConnect({502, "dns_error", key_.host + ": " + (ok ? "no addresses" : error)});
        return;
    }
    // Access rules apply to where we would actually connect, not to the name asked for.
    const auto& access = worker_.config().access;
    std::string denied;
    std::erase_if(addresses, [&](const sockaddr_storage& a) {
        const auto* address = reinterpret_cast<const sockaddr*>(&a);
        if (destinationAllowed(access, address))
            return false;
        denied = addressText(address);
        return true;
    });
    if (addresses.empty()) {
        worker_.metrics().onDenied("destination");
        failConnect({403, "destination_ip_prohibited",
                     key_.host + ": address " + denied + " is not allowed"});
        return;
    }
    addresses_ = std::move(addresses);
    next_address_ = 0;
    state_ = State::Connecting;
    phase_start_us_ = monotonicUs();
    connectNext();
}

void UpstreamConnection::connectNext() {
    if (next_address_ >= addresses_.size()) {
        failConnect(connectError(last_connect_status_, last_connect_error_));
        return;
    }
    if (tcp_open_) {
        // A failed attempt's socket cannot be reused for the next address: close it
        // and continue from its close callback.
        tcp_open_ = false;
        tcp_closing_ = true;
        writer_.abandon();
        tcp_.data = this;
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* h) {
            auto* self = static_cast<UpstreamConnection*>(h->data);
            self->tcp_closing_ = false;
            if (self->pending_on_closed_)
                self->closer_.arm(std::move(self->pending_on_closed_));
            else if (self->state_ == State::Connecting)
                self->connectNext();
        });
        return;
    }
    const auto& address = addresses_[next_address_++];
    uv_tcp_init(worker_.loop(), &tcp_);
    tcp_.data = this;
    writer_.attach(reinterpret_cast<uv_stream_t*>(&tcp_), worker_.sendRing());
    tcp_open_ = true;
    uv_tcp_nodelay(&tcp_, 1);
    connect_req_.data = this;
    int rc = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&address),
                            &UpstreamConnection::onConnect);
    if (rc != 0) {
        last_connect_status_ = rc;
        last_connect_error_ = uv_strerror(rc);
        connectNext();
        return;
    }
    armTimer(worker_.config().timeouts.connect.count());
    timer_purpose_ = TimerPurpose::Connect;
}

void UpstreamConnection::onConnect(uv_connect_t* req, int status) {
    auto* self = static_cast<UpstreamConnection*>(req->data);
    if (status == UV_ECANCELED || self->state_ != State::Connecting)
        return;
    self->disarmTimer();
    self->timer_purpose_ = TimerPurpose::None;
    if (status != 0) {
        self->last_connect_status_ = status;
        char address[64] = "";
        const auto& a = self->addresses_[self->next_address_ - 1];
        if (a.ss_family == AF_INET6)
            uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&a), address, sizeof address);
        else
            uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&a), address, sizeof address);
        self->last_connect_error_ = fmt::format("{} port {}: {}", address, self->key_.port,
                                                uv_strerror(status));
        self->connectNext();
        return;
    }
    self->connect_us_ = monotonicUs() - self->phase_start_us_;
    if (self->tls()) {
        self->startHandshake();
        return;
    }
    self->state_ = State::Idle; // connected, not yet used
    self->idle_since_us_ = monotonicUs();
    self->startReading();
    if (self->events_)
        self->events_->onUpstreamConnected(*self);
}

void UpstreamConnection::failConnect(const ProxyError& error) {
    state_ = State::Closed;
    if (events_)
        events_->onUpstreamConnectFailed(*this, error);
}

void UpstreamConnection::fail(const ProxyError& error) {
    if (state_ == State::Closed)
        return;
    if (state_ == State::Handshaking) {
        // Still connecting as far as the pool knows: a failed handshake is a failed connect.
        disarmTimer();
        timer_purpose_ = TimerPurpose::None;
        if (tcp_open_ && reading_)
            uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
        reading_ = false;
        failConnect(error);
        return;
    }
    state_ = State::Closed;
    reusable_ = false;
    disarmTimer();
    if (tcp_open_ && reading_)
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
    if (events_)
        events_->onUpstreamError(*this, error);
}

void UpstreamConnection::startReading() {
    if (reading_ || !tcp_open_)
        return;
    reading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &UpstreamConnection::onAlloc,
                  &UpstreamConnection::onRead);
}

void UpstreamConnection::pauseReading() {
    read_paused_ = true;
    if (reading_) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
        reading_ = false;
    }
    // A slow client holding us back is not a silent origin: the read deadline
    // only runs while we actually read.
    if (timer_purpose_ == TimerPurpose::Read)
        disarmTimer();
}

void UpstreamConnection::resumeReading() {
    read_paused_ = false;
    if (state_ == State::Closed)
        return;
    if (timer_purpose_ == TimerPurpose::Read)
        armTimer(worker_.config().timeouts.upstream_read.count());
    startReading();
    // Plaintext left inside the TLS session when reading paused may be all there is:
    // no read will come to push it out, so drain it on the next turn.
    if (tls_session_ && tls_session_->established() && !tls_drain_scheduled_ &&
        tls_session_->hasPendingInput()) {
        tls_drain_scheduled_ = true;
        std::weak_ptr<bool> alive = alive_;
        worker_.defer([this, alive] {
            if (alive.expired())
                return;
            tls_drain_scheduled_ = false;
            if (state_ != State::Closed && state_ != State::Handshaking && !read_paused_)
                drainTls();
        });
    }
}

void UpstreamConnection::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* self = static_cast<UpstreamConnection*>(handle->data);
    // Plain responses read into the loop's lendable block while it is free: large
    // reads (fewer syscalls per MB), and a body the client cannot take at once is
    // queued without a copy (the StreamWriter adopts the block). TLS decrypts elsewhere.
    *buf = self->tls_session_ ? self->worker_.readBuffer()
                              : self->worker_.writeBuffers().readBlock(self->worker_.readBuffer());
}

void UpstreamConnection::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<UpstreamConnection*>(stream->data);
    if (nread > 0) {
        self->onData(buf->base, static_cast<size_t>(nread));
        if (self->events_)
            self->events_->onUpstreamReadEnd(*self);
    } else if (nread < 0 && self->tls_job_) {
        // The session is on the thread pool: the end is handled after it, like bytes.
        self->tls_input_end_ = static_cast<int>(nread);
        uv_read_stop(stream);
        self->reading_ = false;
    } else if (nread < 0) {
        self->onReadEnd(static_cast<int>(nread));
    }
}

void UpstreamConnection::onReadEnd(int status) {
    if (status == UV_EOF)
        onEof();
    else if (inHandshake())
        fail(tls_session_->handshakeAborted(std::string("reset the connection (") +
                                            uv_strerror(status) + ")"));
    else
        fail({502, response_started_ ? "http_response_incomplete" : "connection_terminated",
              uv_strerror(status)});
}

void UpstreamConnection::onData(const char* data, size_t length) {
    if (!tls_session_) {
        onPlainData(data, length);
        return;
    }
    if (tls_job_) { // the session is on the thread pool: see onHandshakeJobDone
        tls_backlog_.append(data, length);
        return;
    }
    tls_session_->lend(data, length);
    if (state_ == State::Handshaking)
        continueHandshake();
    if (state_ != State::Closed && state_ != State::Handshaking)
        drainTls();
    // Whatever was not decrypted (reading paused, half a record) waits in the session;
    // a job started by continueHandshake kept it already, and owns the session now.
    if (state_ != State::Closed && !tls_job_)
        tls_session_->release();
}

int UpstreamConnection::writePlain(std::initializer_list<std::string_view> parts) {
    return writer_.write(parts);
}

void UpstreamConnection::onPlainData(const char* data, size_t length) {
    switch (state_) {
    case State::Raw:
        if (events_)
            events_->onUpstreamRaw(*this, data, length);
        return;
    case State::Idle:
        // Nothing is owed on an idle connection: bytes mean the origin is confused.
        fail({502, "http_protocol_error", "unexpected bytes on an idle connection"});
        return;
    case State::Busy:
        break;
    default:
        return;
    }
    if (!response_started_) {
        response_started_ = true;
        // The first-byte deadline is met; from now on only gaps between reads count.
    }
    if (timer_purpose_ == TimerPurpose::FirstByte || timer_purpose_ == TimerPurpose::Read) {
        armTimer(worker_.config().timeouts.upstream_read.count());
        timer_purpose_ = TimerPurpose::Read;
    }
    auto result = parser_.execute(data, length);
    if (state_ == State::Closed)
        return; // an event handler discarded us
    switch (result.status) {
    case HttpParser::Status::Ok:
        return;
    case HttpParser::Status::Paused:
        // Response complete. Anything after it is a response nobody asked for, so the
        // connection is marked before its user hears of the end and returns it to the pool.
        if (result.consumed < length)
            reusable_ = false;
        if (events_)
            events_->onUpstreamResponseComplete(*this);
        return;
    case HttpParser::Status::Upgrade:
        if (state_ == State::Raw && result.consumed < length && events_)
            events_->onUpstreamRaw(*this, data + result.consumed, length - result.consumed);
        return;
    case HttpParser::Status::Error: {
        auto error = parser_.error();
        if (error == ParseError::HeadTooLarge)
            fail({502, "http_response_header_section_size", parser_.errorReason()});
        else if (response_complete_ || parser_.headComplete())
            fail({502, "http_response_incomplete", parser_.errorReason()});
        else
            fail({502, "http_protocol_error", parser_.errorReason()});
        return;
    }
    }
}

void UpstreamConnection::onEof() {
    if (inHandshake()) {
        fail(tls_session_->handshakeAborted("closed the connection"));
        return;
    }
    if (state_ == State::Raw) {
        reading_ = false;
        if (events_)
            events_->onUpstreamEof(*this);
        return;
    }
    if (state_ == State::Busy && parser_.inMessage() && parser_.messageNeedsEof()) {
        // A close-delimited body ends here; the connection cannot be reused.
        reusable_ = false;
        if (parser_.finish()) {
            if (state_ != State::Closed && events_)
                events_->onUpstreamResponseComplete(*this);
            if (state_ != State::Closed)
                fail({502, "connection_terminated", "closed after a close-delimited response"});
            return;
        }
    }
    fail({502, response_started_ ? "http_response_incomplete" : "connection_terminated",
          "origin closed the connection"});
}

int UpstreamConnection::onHead() {
    auto& head = parser_.head();
    if (const Header* ka = head.find("keep-alive"))
        keepalive_hint_ms_ = parseKeepAliveTimeoutMs(ka->value);
    if (head.status >= 100 && head.status < 200 && head.status != 101) {
        informational_ = true;
        if (events_)
            events_->onUpstreamResponseHead(*this, head);
        return 0;
    }
    informational_ = false;
    if (timer_purpose_ == TimerPurpose::FirstByte || timer_purpose_ == TimerPurpose::Read) {
        armTimer(worker_.config().timeouts.upstream_read.count());
        timer_purpose_ = TimerPurpose::Read;
    }
    if (events_)
        events_->onUpstreamResponseHead(*this, head);
    return state_ == State::Closed ? HPE_USER : 0;
}

int UpstreamConnection::onBody(const char* data, size_t length) {
    if (events_)
        events_->onUpstreamBody(*this, data, length);
    return state_ == State::Closed ? HPE_USER : 0;
}

int UpstreamConnection::onMessageComplete() {
    if (informational_) {
        informational_ = false;
        return 0; // the final response follows
    }
    response_complete_ = true;
    if (!parser_.shouldKeepAlive())
        reusable_ = false;
    disarmTimer();
    timer_purpose_ = TimerPurpose::None;
    if (parser_.head().status == 101) {
        if (events_)
            events_->onUpstreamResponseComplete(*this);
        return 0; // llhttp returns HPE_PAUSED_UPGRADE next
    }
    // Reported once the parser returns (onPlainData, onEof): only then is it known
    // whether bytes follow the response.
    return HPE_PAUSED;
}

void UpstreamConnection::beginRequest(bool head_request) {
    state_ = State::Busy;
    ++requests_;
    disarmTimer();
    timer_purpose_ = TimerPurpose::None;
    parser_.reset();
    parser_.setRequestIsHead(head_request);
    response_started_ = false;
    response_complete_ = false;
    informational_ = false;
    keepalive_hint_ms_ = -1;
    startReading();
}

bool UpstreamConnection::write(std::initializer_list<std::string_view> parts) {
    if (state_ == State::Closed || !tcp_open_)
        return false;
    int rc = 0;
    if (!tls_session_) {
        rc = writePlain(parts);
    } else {
        // Small parts (a head, a chunk-size line) share one record instead of one each.
        size_t total = 0;
        for (auto part : parts)
            total += part.size();
        if (parts.size() > 1 && total <= 16 * 1024) {
            tls_scratch_.clear();
            for (auto part : parts)
                tls_scratch_.append(part);
            rc = tls_session_->write(tls_scratch_);
        } else {
            for (auto part : parts)
                if (rc == 0 && !part.empty())
                    rc = tls_session_->write(part);
        }
    }
    if (rc != 0) {
        // Report on a later turn: the caller is in the middle of its own work. By then
        // the connection may have been discarded (the origin's answer or reset read in
        // the same turn) and freed, or closed: then there is nothing left to report.
        reusable_ = false;
        std::weak_ptr<bool> alive = alive_;
        worker_.defer([this, alive, rc] {
            if (alive.expired() || state_ == State::Closed)
                return;
            fail({502, response_started_ ? "http_response_incomplete" : "connection_terminated",
                  uv_strerror(rc)});
        });
        return false;
    }
    if (writeQueueSize() > write_high_water_)
        above_high_water_ = true;
    return true;
}

size_t UpstreamConnection::writeQueueSize() const {
    return tcp_open_ ? writer_.queued() : 0;
}

void UpstreamConnection::onWriteDone(void* owner, int status) {
    auto* self = static_cast<UpstreamConnection*>(owner);
    if (status == UV_ECANCELED || self->state_ == State::Closed)
        return;
    if (status != 0) {
        self->fail({502, self->response_started_ ? "http_response_incomplete"
                                                 : "connection_terminated",
                    uv_strerror(status)});
        return;
    }
    if (self->above_high_water_ && self->writeQueueSize() <= self->write_low_water_) {
        self->above_high_water_ = false;
        if (self->events_)
            self->events_->onUpstreamDrained(*self);
    }
}

void UpstreamConnection::requestSent() {
    if (state_ != State::Busy || response_started_)
        return;
    armTimer(worker_.config().timeouts.upstream_first_byte.count());
    timer_purpose_ = TimerPurpose::FirstByte;
}

bool UpstreamConnection::responseAllowsReuse() const {
    return reusable_ && response_complete_ && state_ == State::Busy;
}

void UpstreamConnection::enterIdle(int64_t timeout_ms) {
    state_ = State::Idle;
    been_idle_ = true;
    idle_since_us_ = monotonicUs();
    read_paused_ = false;
    startReading();
    armTimer(timeout_ms);
    timer_purpose_ = TimerPurpose::Idle;
}

void UpstreamConnection::enterRaw() {
    state_ = State::Raw;
    // The tunnel's owner watches idleness of both directions.
    disarmTimer();
    timer_purpose_ = TimerPurpose::None;
    if (!read_paused_)
        startReading();
}

void UpstreamConnection::shutdownWrite() {
    if (!tcp_open_ || state_ == State::Closed)
        return;
    if (tls_session_)
        tls_session_->closeNotify(); // the TLS end of stream, then the TCP one
    writer_.shutdownAfterFlush([](void*, int) {}); // nothing waits for it
}

// Timers are lazy: a request moves a connection through several deadlines (first byte,
// read, idle), and re-arming a uv timer each time is a heap operation. The uv timer is
// only restarted when the new deadline comes before the one it is set for; one set
// later fires early and onTimer re-arms it for the rest. Disarming just clears the due
// time.
void UpstreamConnection::armTimer(int64_t ms) {
    if (ms <= 0) {
        disarmTimer();
        return;
    }
    uint64_t now = uv_now(worker_.loop());
    timer_due_ = now + static_cast<uint64_t>(ms);
    if (timer_set_for_ != 0 && timer_set_for_ <= timer_due_)
        return;
    timer_set_for_ = timer_due_;
    uv_timer_start(&timer_, &UpstreamConnection::onTimer, static_cast<uint64_t>(ms), 0);
}

void UpstreamConnection::disarmTimer() {
    timer_due_ = 0;
}

void UpstreamConnection::onTimer(uv_timer_t* timer) {
    auto* self = static_cast<UpstreamConnection*>(timer->data);
    self->timer_set_for_ = 0;
    if (self->timer_due_ == 0)
        return; // disarmed since it was set
    uint64_t now = uv_now(self->worker_.loop());
    if (now < self->timer_due_) { // set for an earlier deadline that has moved on
        self->timer_set_for_ = self->timer_due_;
        uv_timer_start(timer, &UpstreamConnection::onTimer, self->timer_due_ - now, 0);
        return;
    }
    self->timer_due_ = 0;
    auto purpose = self->timer_purpose_;
    self->timer_purpose_ = TimerPurpose::None;
    switch (purpose) {
    case TimerPurpose::Connect:
        self->last_connect_status_ = UV_ETIMEDOUT;
        self->last_connect_error_ = "connect timed out";
        self->connectNext();
        return;
    case TimerPurpose::Handshake:
        self->fail({504, "connection_timeout",
                    "TLS handshake with " + self->key_.host + " timed out"});
        return;
    case TimerPurpose::FirstByte:
        self->fail({504, "http_response_timeout", "no response from the origin in time"});
        return;
    case TimerPurpose::Read:
        self->fail({504, "connection_read_timeout", "origin stopped sending"});
        return;
    case TimerPurpose::Idle:
        self->fail({0, "idle_timeout", "idle timeout"});
        return;
    case TimerPurpose::None:
        return;
    }
}

void UpstreamConnection::close(std::function<void()> on_closed) {
    if (closer_.closing() || pending_on_closed_)
        return;
    state_ = State::Closed;
    events_ = nullptr;
    if (resolve_id_ != 0) {
        worker_.resolver().cancel(resolve_id_);
        resolve_id_ = 0;
    }
    if (tls_job_) {
        tls_job_->cancel(); // the session is freed when the job is over
        tls_job_ = nullptr;
    }
    closer_.add(reinterpret_cast<uv_handle_t*>(&timer_));
    if (tcp_open_ && tls_session_)
        tls_session_->closeNotify(); // best effort: written now or cancelled by the close
    if (tcp_open_) {
        tcp_open_ = false;
        writer_.abandon();
        closer_.add(reinterpret_cast<uv_handle_t*>(&tcp_));
    }
    if (tcp_closing_)
        pending_on_closed_ = std::move(on_closed); // armed when that close completes
    else
        closer_.arm(std::move(on_closed));
}

} // namespace pooled
