// AdminServer: see admin_server.h. One AdminConnection per accepted socket: read a
// request head with the project's llhttp wrapper, answer, close.
#include "observe/admin_server.h"

#include "core/worker.h"
#include "http/parser.h"
#include "http/proxy_status.h"
#include "net/tcp_listen.h"
#include "observe/metrics.h"
#include "pool/pool_manager.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace pooled {

namespace {

constexpr uint64_t kAdminTimeoutMs = 10000; // a probe that sends nothing is dropped after this
constexpr size_t kMaxAdminConnections = 64;  // the admin port must not become a resource sink

std::string jsonString(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
            out += escaped;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

} // namespace

class AdminConnection : public Closable, private HttpParser::Handler {
public:
    AdminConnection(AdminServer& server, Worker& worker)
        : server_(server), worker_(worker),
          parser_(HttpParser::Kind::Request, *this, HttpParser::Limits{8192, 64, 2048}) {
        uv_tcp_init(worker_.loop(), &tcp_);
        uv_timer_init(worker_.loop(), &timer_);
        tcp_.data = timer_.data = write_.data = this;
    }

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

    void start() {
        uv_timer_start(&timer_, &AdminConnection::onTimer, kAdminTimeoutMs, 0);
        uv_read_start(stream(), &AdminConnection::onAlloc, &AdminConnection::onRead);
    }

    // Answers at once without reading (over the connection limit).
    void refuse() { send({503, "text/plain; charset=utf-8", "too many admin connections\n"}); }

    void close(std::function<void()> on_closed) override {
        closer_.add(reinterpret_cast<uv_handle_t*>(&tcp_));
        closer_.add(reinterpret_cast<uv_handle_t*>(&timer_));
        closer_.arm(std::move(on_closed));
    }

private:
    static void onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
        *buf = static_cast<AdminConnection*>(handle->data)->worker_.readBuffer();
    }

    static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<AdminConnection*>(stream->data);
        if (nread == 0)
            return;
        if (nread < 0) {
            self->end(); // EOF or error before a whole request: nothing to answer
            return;
        }
        auto result = self->parser_.execute(buf->base, static_cast<size_t>(nread));
        if (result.status == HttpParser::Status::Error) {
            self->send({400, "text/plain; charset=utf-8", "bad request\n"});
        } else if (self->complete_) {
            self->send(self->server_.respond(self->method_, self->target_));
        }
    }

    static void onTimer(uv_timer_t* timer) { static_cast<AdminConnection*>(timer->data)->end(); }

    static void onWritten(uv_write_t* req, int) {
        static_cast<AdminConnection*>(req->data)->end();
    }

    int onHead() override {
        method_ = parser_.head().method;
        target_ = parser_.head().target;
        return 0;
    }
    int onBody(const char*, size_t) override { return 0; }
    int onMessageComplete() override {
        complete_ = true;
        return HPE_PAUSED;
    }

    void send(const AdminServer::Reply& reply) {
        if (responded_)
            return;
        responded_ = true;
        uv_read_stop(stream());
        response_ = "HTTP/1.1 " + std::to_string(reply.status) + " " + reasonPhrase(reply.status) +
                    "\r\nContent-Type: " + reply.content_type +
                    "\r\nContent-Length: " + std::to_string(reply.body.size()) +
                    "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
        if (method_ != "HEAD")
            response_ += reply.body;
        uv_buf_t buf = uv_buf_init(response_.data(), static_cast<unsigned>(response_.size()));
        if (uv_write(&write_, stream(), &buf, 1, &AdminConnection::onWritten) != 0)
            end();
    }

    void end() {
        if (ended_)
            return;
        ended_ = true;
        server_.endConnection(this);
    }

    AdminServer& server_;
    Worker& worker_;
    uv_tcp_t tcp_;
    uv_timer_t timer_;
    uv_write_t write_;
    HandleCloser closer_;
    HttpParser parser_;
    std::string method_;
    std::string target_;
    std::string response_; // owned until the write callback (which runs before close)
    bool complete_ = false;
    bool responded_ = false;
    bool ended_ = false;
};

AdminServer::AdminServer(Worker& worker, AdminConfig config)
    : worker_(worker), config_(std::move(config)) {
    uv_tcp_init(worker_.loop(), &tcp_);
    tcp_.data = this;
}

AdminServer::~AdminServer() = default;

void AdminServer::start() {
    bindAndListen(tcp_, config_.address, config_.port, 128, &AdminServer::onConnection, "admin");
}

std::string AdminServer::boundAddress() const {
    return localAddress(tcp_);
}

void AdminServer::onConnection(uv_stream_t* server, int status) {
    auto* self = static_cast<AdminServer*>(server->data);
    if (status != 0 || self->closed_)
        return;
    auto owned = std::make_unique<AdminConnection>(*self, self->worker_);
    auto* raw = owned.get();
    self->connections_.emplace(raw, std::move(owned));
    if (uv_accept(server, raw->stream()) != 0)
        self->endConnection(raw);
    else if (self->connections_.size() > kMaxAdminConnections)
        raw->refuse();
    else
        raw->start();
}

void AdminServer::endConnection(AdminConnection* connection) {
    auto it = connections_.find(connection);
    if (it == connections_.end())
        return;
    auto owned = std::move(it->second);
    connections_.erase(it);
    worker_.retire(std::move(owned));
}

void AdminServer::close(std::function<void()> on_closed) {
    closed_ = true;
    std::vector<AdminConnection*> open;
    for (auto& [raw, owned] : connections_)
        open.push_back(raw);
    for (auto* c : open)
        endConnection(c);
    closer_.add(reinterpret_cast<uv_handle_t*>(&tcp_));
    closer_.arm(std::move(on_closed));
}

AdminServer::Reply AdminServer::respond(const std::string& method,
                                        const std::string& target) const {
    if (method != "GET" && method != "HEAD")
        return {405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
    const std::string path = target.substr(0, target.find('?'));
    if (path == "/healthz")
        return {200, "text/plain; charset=utf-8", "ok\n"};
    if (path == "/readyz") {
        if (worker_.ready())
            return {200, "text/plain; charset=utf-8", "ready\n"};
        return {503, "text/plain; charset=utf-8",
                worker_.draining() ? "draining\n" : "not listening\n"};
    }
    if (path == "/metrics")
        return {200, "text/plain; version=0.0.4; charset=utf-8",
                worker_.metrics().render(worker_.liveGauges())};
    if (path == "/pools")
        return {200, "application/json", poolsJson()};
    return {404, "text/plain; charset=utf-8", "not found: try /healthz /readyz /metrics /pools\n"};
}

std::string AdminServer::poolsJson() const {
    std::string out = "{\"total_connections\":" +
                      std::to_string(worker_.pools().totalConnections()) + ",\"pools\":[";
    bool first = true;
    for (const auto& [key, pool] : worker_.pools().pools()) {
        const HostPoolStats s = pool->stats();
        const int64_t learned = pool->learnedIdleMs();
        out += first ? "" : ",";
        first = false;
        out += "{\"key\":" + jsonString(key.toString()) + ",\"active\":" + std::to_string(s.active) +
               ",\"idle\":" + std::to_string(s.idle) + ",\"pending\":" + std::to_string(s.pending) +
               ",\"connecting\":" + std::to_string(s.connecting) +
               ",\"idle_timeout_ms\":" + std::to_string(s.idle_timeout_ms) +
               ",\"learned_idle_timeout_ms\":" + (learned < 0 ? "null" : std::to_string(learned)) +
               "}";
    }
    return out + "]}\n";
}

} // namespace pooled
