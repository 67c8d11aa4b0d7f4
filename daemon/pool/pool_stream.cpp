// PoolStream: see pool_stream.h. For HTTP/1 every call goes to the stream's connection.
#include "pool/pool_stream.h"

#include "core/assert.h"
#include "pool/upstream_connection.h"

namespace pooled {

void PoolStream::begin(UpstreamEvents& events, bool head_request) {
    POOLED_ASSERT(connection_ != nullptr, "a stream is begun once it was handed out");
    connection_->setEvents(&events);
    connection_->beginRequest(head_request);
}

StreamSetup PoolStream::setup() const {
    const UpstreamConnection& c = *connection_;
    StreamSetup s;
    s.reused = c.requests() > 1;
    if (!s.reused) {
        s.dns_us = c.dnsUs();
        s.connect_us = c.connectUs();
        s.tls_us = c.tlsUs();
        s.tls_resumed = c.tlsResumed();
    } else if (c.tls()) {
        s.tls_us = 0; // no handshake for this request
    }
    s.connection_id = c.id();
    s.connection_requests = c.requests();
    return s;
}

bool PoolStream::write(std::initializer_list<std::string_view> parts) {
    return connection_->write(parts);
}

size_t PoolStream::queued() const {
    return connection_->writeQueueSize();
}

void PoolStream::requestSent() {
    connection_->requestSent();
}

void PoolStream::pauseResponse() {
    connection_->pauseReading();
}

void PoolStream::resumeResponse() {
    connection_->resumeReading();
}

bool PoolStream::failedAsStale() const {
    return connection_->hasBeenIdle() && !connection_->responseStarted();
}

} // namespace pooled
