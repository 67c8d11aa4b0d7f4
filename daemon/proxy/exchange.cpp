// Exchange: see exchange.h. Each event goes to the session; those that come from the
// loop (upstream and pool events) enter it through an Entry, so the exchange is freed,
// if it went idle, only after the session is done with it.
#include "proxy/exchange.h"

#include "core/assert.h"
#include "pool/upstream_connection.h"
#include "proxy/client_session.h"

namespace pooled {

Exchange::Exchange(ClientSession& session, const HttpParser::Limits& limits)
    : session_(&session), parser_(HttpParser::Kind::Request, *this, limits) {}

Exchange::~Exchange() = default;

void Exchange::reuse(ClientSession& session, const HttpParser::Limits& limits) {
    POOLED_ASSERT(!tunnel_ && !auth_check_ && !queued(), "a spare exchange holds nothing");
    session_ = &session;
    parser_.reset();
    parser_.setLimits(limits);
    pending_input_.clear();
    in_feed_ = false;
    request_head_bytes_.clear();
    upstream_body_.clear();
    response_head_out_.clear();
    static_cast<TunnelState&>(*this) = TunnelState{};
    resetRequest();
}

void Exchange::resetRequest() {
    POOLED_ASSERT(!upstream_, "a request's stream is released before the next request");
    static_cast<RequestState&>(*this) = RequestState{};
    request_.clear();
    prefer_fresh = require_fresh = false;
}

int Exchange::onHead() {
    return session_->onHead();
}

int Exchange::onBody(const char* data, size_t length) {
    return session_->onBody(data, length);
}

int Exchange::onMessageComplete() {
    return session_->onMessageComplete();
}

void Exchange::onPoolStream(PoolStream stream) {
    ClientSession::Entry entry(*session_);
    session_->onPoolStream(stream);
}

void Exchange::onPoolError(const ProxyError& error) {
    ClientSession::Entry entry(*session_);
    session_->onPoolError(error);
}

void Exchange::onUpstreamConnected(UpstreamConnection& c) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamConnected(c);
}

void Exchange::onUpstreamConnectFailed(UpstreamConnection& c, const ProxyError& error) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamConnectFailed(c, error);
}

void Exchange::onUpstreamResponseHead(UpstreamConnection& c, MessageHead& head) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamResponseHead(c, head);
}

void Exchange::onUpstreamBody(UpstreamConnection& c, const char* data, size_t length) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamBody(c, data, length);
}

void Exchange::onUpstreamResponseComplete(UpstreamConnection& c) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamResponseComplete(c);
}

void Exchange::onUpstreamReadEnd(UpstreamConnection& c) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamReadEnd(c);
}

void Exchange::onUpstreamError(UpstreamConnection& c, const ProxyError& error) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamError(c, error);
}

void Exchange::onUpstreamDrained(UpstreamConnection& c) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamDrained(c);
}

void Exchange::onUpstreamRaw(UpstreamConnection& c, const char* data, size_t length) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamRaw(c, data, length);
}

void Exchange::onUpstreamEof(UpstreamConnection& c) {
    ClientSession::Entry entry(*session_);
    session_->onUpstreamEof(c);
}

} // namespace pooled
