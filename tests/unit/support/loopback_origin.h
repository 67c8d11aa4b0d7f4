// A tiny HTTP/1.1 origin for unit tests, on the test's own libuv loop: it listens on
// 127.0.0.1 port 0, answers every request head (bodies are not expected) with a fixed
// response, counts what it sees, and closes connections on command.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pooled::test {

class LoopbackOrigin {
public:
    static constexpr const char* kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    explicit LoopbackOrigin(uv_loop_t* loop, std::string response = kOk);
    // close() must have been called and the loop run until its handles closed.
    ~LoopbackOrigin();
    LoopbackOrigin(const LoopbackOrigin&) = delete;
    LoopbackOrigin& operator=(const LoopbackOrigin&) = delete;

    uint16_t port() const { return port_; }
    void setResponse(std::string response) { response_ = std::move(response); }

    size_t accepted() const { return accepted_; }        // connections ever accepted
    size_t open() const { return connections_.size(); }  // accepted and not yet closed
    size_t requests() const { return requests_; }        // request heads answered
    size_t peerCloses() const { return peer_closes_; }   // EOF or reset from the client
    size_t originCloses() const { return origin_closes_; } // closed on command

    // Closes every connection that answered at least one request; returns how many.
    size_t closeServed();
    // Closes every open connection; returns how many.
    size_t closeAll();
    // Stops listening and closes every connection (asynchronously: run the loop).
    void close();

private:
    struct Connection {
        uv_tcp_t tcp;
        LoopbackOrigin* origin = nullptr;
        std::string pending; // bytes of a request head not yet complete
        size_t served = 0;
    };

    static void onConnection(uv_stream_t* server, int status);
    static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    void closeConnection(Connection* c);

    uv_loop_t* loop_;
    uv_tcp_t server_;
    std::string response_;
    uint16_t port_ = 0;
    bool closed_ = false;
    std::vector<Connection*> connections_;
    size_t accepted_ = 0;
    size_t requests_ = 0;
    size_t peer_closes_ = 0;
    size_t origin_closes_ = 0;
};

} // namespace pooled::test
