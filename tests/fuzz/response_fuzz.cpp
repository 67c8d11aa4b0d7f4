// Fuzz target, response path: origin bytes -> strict parser -> the head and
// re-framed body pooled would send the client (chunked for close-delimited
// bodies). What the client receives must parse as the same status and body.
#include "fuzz_support.h"
#include "http/headers.h"

#include <fmt/format.h>

using namespace pooled;
using namespace pooled::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    // First byte picks the request context: HEAD or not, HTTP/1.0 client or not.
    bool head_request = data[0] & 1;
    bool http10_client = data[0] & 2;
    Recorder origin(HttpParser::Kind::Response);
    origin.parser.setRequestIsHead(head_request);
    const char* bytes = reinterpret_cast<const char*>(data + 1);
    auto result = origin.parser.execute(bytes, size - 1);
    if (result.status == HttpParser::Status::Error || origin.messages.empty())
        return 0;
    if (!origin.messages.back().complete && origin.parser.messageNeedsEof())
        origin.parser.finish(); // the origin closed: a close-delimited body ends here
    // Skip 1xx interim heads: pooled relays the final response's framing.
    const Message* final_message = nullptr;
    for (const auto& m : origin.messages)
        if (m.head.status >= 200 && m.complete)
            final_message = &m;
    if (!final_message || final_message->head.status == 101)
        return 0;
    const Message& m = *final_message;
    for (const auto& h : m.head.headers)
        require(!hasLineBreak(h.name) && !hasLineBreak(h.value));
    require(!hasLineBreak(m.head.reason));

    BodyFraming framing = clientFraming(m.head, head_request, http10_client);
    std::string out;
    appendClientResponseHead(out, m.head, {framing, true, http10_client, false, "pooled"});
    if (framing == BodyFraming::Chunked) {
        if (!m.body.empty())
            out += fmt::format("{:x}\r\n{}\r\n", m.body.size(), m.body);
        out += "0\r\n\r\n";
    } else if (framing != BodyFraming::None) {
        out += m.body;
    }
    if (framing == BodyFraming::None)
        require(m.body.empty());

    Recorder client(HttpParser::Kind::Response, 4);
    client.parser.setRequestIsHead(head_request);
    auto got = client.parser.execute(out.data(), out.size());
    require(got.status != HttpParser::Status::Error);
    if (framing == BodyFraming::CloseDelimited)
        require(client.parser.finish());
    require(client.messages.size() == 1 && client.messages.front().complete);
    require(client.messages.front().head.status == m.head.status);
    require(client.messages.front().body == m.body);
    return 0;
}
