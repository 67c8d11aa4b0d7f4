// Fuzz target, request path: client bytes -> strict parser -> target parsing ->
// the head and re-framed body pooled would send upstream. What is sent must
// itself parse cleanly as exactly the request that was accepted: no smuggled
// second request, no header injection, the same body.
#include "fuzz_support.h"
#include "http/headers.h"
#include "http/target.h"

#include <fmt/format.h>

using namespace pooled;
using namespace pooled::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Recorder client(HttpParser::Kind::Request);
    const char* bytes = reinterpret_cast<const char*>(data);
    auto result = client.parser.execute(bytes, size);
    if (result.status == HttpParser::Status::Error || client.messages.empty())
        return 0;
    const Message& m = client.messages.front();
    if (!m.complete || m.head.method == "CONNECT" || m.head.upgrade)
        return 0;
    auto target = parseRequestTarget(m.head.method, m.head.target);
    if (!target)
        return 0;
    require(!hasLineBreak(target->path) && !target->path.empty());
    for (const auto& h : m.head.headers)
        require(!hasLineBreak(h.name) && !hasLineBreak(h.value));

    std::string authority = target->authority.host.empty() ? "origin.test"
                                                           : target->authority.toString();
    std::string out;
    appendUpstreamRequestHead(out, m.head, {target->path, authority, "pooled", false});
    if (m.head.chunked) {
        if (!m.body.empty())
            out += fmt::format("{:x}\r\n{}\r\n", m.body.size(), m.body);
        out += "0\r\n\r\n";
    } else {
        out += m.body;
    }

    Recorder upstream(HttpParser::Kind::Request, 4);
    auto sent = upstream.parser.execute(out.data(), out.size());
    require(sent.status != HttpParser::Status::Error);
    require(upstream.messages.size() == 1 && upstream.messages.front().complete);
    require(sent.consumed == out.size()); // nothing after the request: no smuggled second one
    const Message& u = upstream.messages.front();
    require(u.head.method == m.head.method);
    require(u.head.target == target->path);
    require(u.body == m.body);
    int via = 0;
    for (const auto& h : u.head.headers) {
        require(!equalsIgnoreCase(h.name, "proxy-authorization"));
        require(!equalsIgnoreCase(h.name, "proxy-connection"));
        via += equalsIgnoreCase(h.name, "via") && h.value.find("pooled") != std::string::npos;
    }
    require(via >= 1);
    return 0;
}
