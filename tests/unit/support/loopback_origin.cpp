// LoopbackOrigin: see loopback_origin.h.
#include "unit/support/loopback_origin.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace pooled::test {

namespace {

struct WriteRequest {
    uv_write_t req;
    std::string bytes;
};

} // namespace

LoopbackOrigin::LoopbackOrigin(uv_loop_t* loop, std::string response)
    : loop_(loop), response_(std::move(response)) {
    uv_tcp_init(loop_, &server_);
    server_.data = this;
    sockaddr_in address{};
    uv_ip4_addr("127.0.0.1", 0, &address);
    if (uv_tcp_bind(&server_, reinterpret_cast<const sockaddr*>(&address), 0) != 0 ||
        uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 64, &LoopbackOrigin::onConnection) !=
            0)
        throw std::runtime_error("loopback origin: cannot listen");
    sockaddr_storage bound{};
    int length = sizeof bound;
    uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

LoopbackOrigin::~LoopbackOrigin() {
    if (!closed_)
        std::abort(); // the handles still belong to the loop
}

void LoopbackOrigin::onConnection(uv_stream_t* server, int status) {
    auto* self = static_cast<LoopbackOrigin*>(server->data);
    if (status != 0)
        return;
    auto* c = new Connection;
    c->origin = self;
    uv_tcp_init(self->loop_, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
                 [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
        return;
    }
    self->accepted_++;
    self->connections_.push_back(c);
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), &LoopbackOrigin::onAlloc,
                  &LoopbackOrigin::onRead);
}

void LoopbackOrigin::onAlloc(uv_handle_t*, size_t suggested, uv_buf_t* buf) {
    buf->base = static_cast<char*>(std::malloc(suggested));
    buf->len = suggested;
}

void LoopbackOrigin::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Connection*>(stream->data);
    auto* self = c->origin;
    if (nread > 0) {
        c->pending.append(buf->base, static_cast<size_t>(nread));
        size_t end;
        while ((end = c->pending.find("\r\n\r\n")) != std::string::npos) {
            c->pending.erase(0, end + 4);
            c->served++;
            self->requests_++;
            auto* w = new WriteRequest;
            w->bytes = self->response_;
            uv_buf_t out = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
            w->req.data = w;
            auto done = [](uv_write_t* req, int) { delete static_cast<WriteRequest*>(req->data); };
            if (uv_write(&w->req, stream, &out, 1, done) != 0)
                delete w;
        }
    } else if (nread < 0) {
        self->peer_closes_++;
        self->closeConnection(c);
    }
    std::free(buf->base);
}

void LoopbackOrigin::closeConnection(Connection* c) {
    auto it = std::find(connections_.begin(), connections_.end(), c);
    if (it == connections_.end())
        return;
    connections_.erase(it);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
             [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
}

size_t LoopbackOrigin::closeServed() {
    std::vector<Connection*> served;
    for (auto* c : connections_)
        if (c->served > 0 && c->pending.empty())
            served.push_back(c);
    for (auto* c : served)
        closeConnection(c);
    origin_closes_ += served.size();
    return served.size();
}

size_t LoopbackOrigin::closeAll() {
    auto all = connections_;
    for (auto* c : all)
        closeConnection(c);
    origin_closes_ += all.size();
    return all.size();
}

void LoopbackOrigin::close() {
    if (closed_)
        return;
    closed_ = true;
    closeAll();
    uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
}

} // namespace pooled::test
