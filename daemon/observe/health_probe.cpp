// probeHealth: see health_probe.h. Plain blocking sockets: it runs alone in its own
// short-lived process, outside any event loop.
#include "observe/health_probe.h"

#include "config/config_loader.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pooled {

bool probeHealth(const std::string& address, const std::string& path, int timeout_ms,
                 std::string& error) {
    ListenerConfig target;
    try {
        target = parseListenAddress(address);
    } catch (const std::invalid_argument& e) {
        error = e.what();
        return false;
    }
    sockaddr_storage sa{};
    socklen_t length = 0;
    const bool v6 = target.address.find(':') != std::string::npos;
    if (v6) {
        auto* a6 = reinterpret_cast<sockaddr_in6*>(&sa);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(target.port);
        inet_pton(AF_INET6, target.address.c_str(), &a6->sin6_addr);
        length = sizeof *a6;
    } else {
        auto* a4 = reinterpret_cast<sockaddr_in*>(&sa);
        a4->sin_family = AF_INET;
        a4->sin_port = htons(target.port);
        inet_pton(AF_INET, target.address.c_str(), &a4->sin_addr);
        length = sizeof *a4;
    }
    int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::strerror(errno);
        return false;
    }
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), length) != 0) {
        error = "connect " + address + ": " + std::strerror(errno);
    } else {
        const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + address +
                                    "\r\nConnection: close\r\n\r\n";
        if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size())) {
            error = std::string("send: ") + std::strerror(errno);
        } else {
            char buffer[512];
            ssize_t n;
            while (response.size() < 64 && (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0)
                response.append(buffer, static_cast<size_t>(n));
            if (response.empty())
                error = "no response from " + address;
        }
    }
    ::close(fd);
    if (!error.empty())
        return false;
    if (response.rfind("HTTP/1.1 200 ", 0) == 0)
        return true;
    error = response.substr(0, response.find("\r\n"));
    return false;
}

} // namespace pooled
