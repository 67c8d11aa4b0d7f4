// llhttp wrapper: see parser.h.
#include "http/parser.h"

#include <cstdint>
#include <cstring>
#include <string_view>

namespace pooled {

namespace {

// Chunk extensions are dropped (pooled re-chunks), but a client could stream them
// forever without a body byte: Node's limit, per message.
constexpr size_t kMaxChunkExtensionBytes = 16 * 1024;

bool isControlByte(unsigned char c) {
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

// Any control byte in [at, at+length)? Header values are scanned whole, so test 8 bytes
// at a time for "a byte below 0x20 or equal to 0x7f" (exact as a yes/no per word) and
// look at single bytes only in a word that says yes, where a tab may be the cause.
bool hasControlByte(const char* at, size_t length) {
    constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= length; i += 8) {
        uint64_t x;
        std::memcpy(&x, at + i, 8);
        const uint64_t below_space = (x - 0x20 * kOnes) & ~x & kHigh;
        const uint64_t del = x ^ (0x7f * kOnes);
        const uint64_t has_del = (del - kOnes) & ~del & kHigh;
        if ((below_space | has_del) == 0)
            continue;
        for (size_t k = i; k < i + 8; ++k)
            if (isControlByte(static_cast<unsigned char>(at[k])))
                return true;
    }
    for (; i < length; ++i)
        if (isControlByte(static_cast<unsigned char>(at[i])))
            return true;
    return false;
}

bool isTokenChar(unsigned char c) { // RFC 9110 5.6.2 tchar
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

HttpParser& self(llhttp_t* p) {
    return *static_cast<HttpParser*>(p->data);
}

} // namespace

const llhttp_settings_t& HttpParser::settings() {
    // Immutable after first use: shared by every parser, like Node's.
    static const llhttp_settings_t s = [] {
        llhttp_settings_t st;
        llhttp_settings_init(&st);
        st.on_message_begin = &HttpParser::onMessageBegin;
        st.on_url = &HttpParser::onUrl;
        st.on_status = &HttpParser::onStatus;
        st.on_header_field = &HttpParser::onHeaderField;
        st.on_header_value = &HttpParser::onHeaderValue;
        st.on_header_field_complete = &HttpParser::onHeaderFieldComplete;
        st.on_headers_complete = &HttpParser::onHeadersComplete;
        st.on_body = &HttpParser::onBodyData;
        st.on_chunk_header = &HttpParser::onChunkHeader;
        st.on_chunk_extension_name = &HttpParser::onChunkExtension;
        st.on_chunk_extension_value = &HttpParser::onChunkExtension;
        st.on_message_complete = &HttpParser::onMessageDone;
        return st;
    }();
    return s;
}

HttpParser::HttpParser(Kind kind, Handler& handler, Limits limits)
    : handler_(handler), limits_(limits) {
    llhttp_init(&parser_, kind == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE, &settings());
    parser_.data = this;
}

void HttpParser::reset() {
    llhttp_reset(&parser_);
    head_.clear();
    error_ = ParseError::None;
    error_reason_.clear();
    head_bytes_ = 0;
    body_declared_ = 0;
    chunk_extension_bytes_ = 0;
    in_field_ = false;
    in_message_ = false;
    head_complete_ = false;
    head_tail_ = 0;
}

int HttpParser::fail(ParseError error, const char* reason) {
    error_ = error;
    error_reason_ = reason;
    llhttp_set_error_reason(&parser_, reason);
    return HPE_USER;
}

bool HttpParser::countHeadBytes(size_t length) {
    head_bytes_ += length;
    return head_bytes_ <= limits_.max_head_size;
}

int HttpParser::onMessageBegin(llhttp_t* p) {
    auto& s = self(p);
    s.head_.clear();
    s.head_bytes_ = 0;
    s.body_declared_ = 0;
    s.chunk_extension_bytes_ = 0;
    s.in_field_ = false;
    s.in_message_ = true;
    s.head_complete_ = false;
    return 0;
}

int HttpParser::onUrl(llhttp_t* p, const char* at, size_t length) {
    auto& s = self(p);
    s.head_.target.append(at, length);
    if (s.head_.target.size() > s.limits_.max_uri_length)
        return s.fail(ParseError::UriTooLong, "request target too long");
    if (!s.countHeadBytes(length))
        return s.fail(ParseError::HeadTooLarge, "header section too large");
    return 0;
}

int HttpParser::onStatus(llhttp_t* p, const char* at, size_t length) {
    auto& s = self(p);
    if (hasControlByte(at, length))
        return s.fail(ParseError::Malformed, "control character in reason phrase");
    s.head_.reason.append(at, length);
    if (!s.countHeadBytes(length))
        return s.fail(ParseError::HeadTooLarge, "header section too large");
    return 0;
}

int HttpParser::onHeaderField(llhttp_t* p, const char* at, size_t length) {
    auto& s = self(p);
    if (!s.countHeadBytes(length))
        return s.fail(ParseError::HeadTooLarge, "header section too large");
    if (!s.in_field_) {
        if (s.head_.headers.size() >= s.limits_.max_header_count)
            return s.fail(ParseError::HeadTooLarge, "too many header fields");
        s.head_.headers.push_back({});
        s.in_field_ = true;
    }
    s.head_.headers.back().name.append(at, length);
    return 0;
}

int HttpParser::onHeaderFieldComplete(llhttp_t* p) {
    self(p).in_field_ = false; // an empty value calls no value callback: fields delimit
    return 0;
}

int HttpParser::onHeaderValue(llhttp_t* p, const char* at, size_t length) {
    auto& s = self(p);
    if (!s.countHeadBytes(length))
        return s.fail(ParseError::HeadTooLarge, "header section too large");
    // llhttp lets obs-fold and some control bytes through in values; a value
    // that two parsers could read differently is a smuggling vector. A folded
    // line shows as a value callback right after a line feed.
    const char* q = at;
    while (q > s.exec_start_ && (q[-1] == ' ' || q[-1] == '\t'))
        --q;
    char before = q > s.exec_start_ ? q[-1] : s.last_byte_;
    if (length > 0 && before == '\n') // (an empty value's span may start on the next line)
        return s.fail(ParseError::Malformed, "obsolete line folding in header value");
    if (hasControlByte(at, length))
        return s.fail(ParseError::Malformed, "control character in header value");
    if (s.head_.headers.empty())
        return s.fail(ParseError::Malformed, "header value without name");
    s.head_.headers.back().value.append(at, length);
    return 0;
}

int HttpParser::checkHead() {
    // Transfer-Encoding: we only ever forward a body whose framing we are sure
    // of, so the only coding accepted is a lone "chunked".
    int te_count = 0;
    bool request = llhttp_get_type(&parser_) == HTTP_REQUEST;
    for (auto& h : head_.headers) {
        auto trimmed = trim(h.value);
        if (trimmed.size() != h.value.size())
            h.value = std::string(trimmed);
        if (equalsIgnoreCase(h.name, "transfer-encoding")) {
            ++te_count;
            if (te_count > 1 || !equalsIgnoreCase(h.value, "chunked"))
                return fail(ParseError::BadTransferCoding, "unsupported transfer-coding");
            // RFC 9112 6.1: HTTP/1.0 has no chunked framing; a 1.0 hop could read the
            // body by Content-Length or to the close instead.
            if (request && llhttp_get_http_minor(&parser_) == 0)
                return fail(ParseError::BadTransferCoding, "Transfer-Encoding in HTTP/1.0");
        }
        if (h.name.empty())
            return fail(ParseError::Malformed, "empty header name");
    }
    return 0;
}

int HttpParser::onHeadersComplete(llhttp_t* p) {
    auto& s = self(p);
    // HTTP/0.9 (no version: llhttp accepts it, headers and all) and 2.x heads have
    // no place on an HTTP/1.x hop.
    if (llhttp_get_http_major(p) != 1 || llhttp_get_http_minor(p) > 1)
        return s.fail(ParseError::Malformed, "unsupported HTTP version");
    // llhttp takes any status up to 999 (even "99"); RFC 9110 15 defines 100-599 only.
    if (llhttp_get_type(p) == HTTP_RESPONSE &&
        (llhttp_get_status_code(p) < 100 || llhttp_get_status_code(p) > 599))
        return s.fail(ParseError::Malformed, "invalid status code");
    if (int rc = s.checkHead(); rc != 0)
        return rc;
    auto& h = s.head_;
    h.version_major = llhttp_get_http_major(p);
    h.version_minor = llhttp_get_http_minor(p);
    if (llhttp_get_type(p) == HTTP_REQUEST)
        h.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
    else
        h.status = llhttp_get_status_code(p);
    h.chunked = (p->flags & F_CHUNKED) != 0;
    h.content_length = -1;
    if (p->flags & F_CONTENT_LENGTH) {
        // llhttp takes up to 2^64-1; as int64 that would read "no Content-Length" and
        // the body bytes would reach the next hop as a request of their own.
        if (p->content_length > static_cast<uint64_t>(INT64_MAX))
            return s.fail(ParseError::Malformed, "Content-Length out of range");
        if (s.limits_.max_body_size > 0 && p->content_length > s.limits_.max_body_size)
            return s.fail(ParseError::BodyTooLarge, "body larger than max_request_body");
        h.content_length = static_cast<int64_t>(p->content_length);
    }
    h.keep_alive = llhttp_should_keep_alive(p) != 0;
    h.upgrade = p->upgrade != 0;
    s.head_complete_ = true;
    int rc = s.handler_.onHead();
    if (rc == 0 && llhttp_get_type(p) == HTTP_RESPONSE &&
        (s.request_is_head_ || (h.status >= 100 && h.status < 200 && h.status != 101) ||
         h.status == 204 || h.status == 304))
        return 1; // no body, whatever Content-Length says (RFC 9110 6.4.1)
    return rc;
}

int HttpParser::onBodyData(llhttp_t* p, const char* at, size_t length) {
    return self(p).handler_.onBody(at, length);
}

int HttpParser::onChunkHeader(llhttp_t* p) {
    auto& s = self(p);
    // The announced size counts, not the bytes seen: refused before any of them arrive.
    if (s.limits_.max_body_size > 0 &&
        p->content_length > s.limits_.max_body_size - s.body_declared_)
        return s.fail(ParseError::BodyTooLarge, "body larger than max_request_body");
    s.body_declared_ += p->content_length;
    return 0;
}

int HttpParser::onChunkExtension(llhttp_t* p, const char*, size_t length) {
    auto& s = self(p);
    s.chunk_extension_bytes_ += length;
    if (s.chunk_extension_bytes_ > kMaxChunkExtensionBytes)
        return s.fail(ParseError::BodyTooLarge, "chunk extensions too long");
    return 0;
}

int HttpParser::onMessageDone(llhttp_t* p) {
    auto& s = self(p);
    s.in_message_ = false;
    s.scan_started_ = false; // the next message's head gets its own scan
    return s.handler_.onMessageComplete();
}

bool HttpParser::headEndsWithBareLf(const char* data, size_t length) {
    // llhttp (even strict) takes "\r\n\n" as the end of a head. Scan head bytes,
    // up to the real "\r\n\r\n", for that bare LF; body bytes are never scanned.
    // Both patterns end in LF, so only the 3 bytes before each LF matter: memchr
    // jumps between them instead of shifting every byte through head_tail_.
    auto feed = [&](size_t from, size_t to) { // bytes [from, to)
        for (size_t k = to - from > 4 ? to - 4 : from; k < to; ++k)
            head_tail_ = (head_tail_ << 8) | static_cast<unsigned char>(data[k]);
    };
    size_t i = 0;
    while (i < length) {
        const auto* hit = static_cast<const char*>(std::memchr(data + i, '\n', length - i));
        if (!hit) {
            feed(i, length);
            return false;
        }
        const size_t lf = static_cast<size_t>(hit - data);
        feed(i, lf + 1);
        if ((head_tail_ & 0xffffffu) == 0x0d0a0a)
            return true;
        if (head_tail_ == 0x0d0a0d0a) {
            head_tail_ = 0;
            scan_done_ = true;
            return false;
        }
        i = lf + 1;
    }
    return false;
}

HttpParser::Result HttpParser::execute(const char* data, size_t length) {
    if (!in_message_ || !head_complete_) {
        if (!in_message_ && !scan_started_) {
            scan_started_ = true;
            scan_done_ = false;
            head_tail_ = 0;
        }
        if (!scan_done_ && headEndsWithBareLf(data, length)) {
            error_ = ParseError::Malformed;
            error_reason_ = "bare LF in the header section";
            return {Status::Error, 0};
        }
    }
    exec_start_ = data;
    llhttp_errno_t rc = llhttp_execute(&parser_, data, length);
    if (length > 0)
        last_byte_ = data[length - 1];
    if (rc == HPE_OK)
        return {Status::Ok, length};
    size_t consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    if (rc == HPE_PAUSED)
        return {Status::Paused, consumed};
    if (rc == HPE_PAUSED_UPGRADE)
        return {Status::Upgrade, consumed};
    if (error_ == ParseError::None) {
        error_ = ParseError::Malformed;
        error_reason_ = llhttp_get_error_reason(&parser_) ? llhttp_get_error_reason(&parser_)
                                                          : llhttp_errno_name(rc);
        if (rc == HPE_INVALID_METHOD)
            classifyInvalidMethod(data, length, llhttp_get_error_pos(&parser_));
    }
    return {Status::Error, consumed};
}

// llhttp knows a fixed list of methods. One it does not know but that is a valid
// token ("get", "FOO") is not malformed, just not implemented here (RFC 9110 9.1).
void HttpParser::classifyInvalidMethod(const char* data, size_t length, const char* error_at) {
    if (!error_at || error_at < data || error_at >= data + length)
        return;
    // Bytes before the error matched a known method's prefix (tchars); look back to
    // the line start only to be sure the token began in this buffer or one before.
    size_t prefix = 0;
    for (const char* q = error_at; q > data && q[-1] != '\n'; --q, ++prefix)
        if (!isTokenChar(static_cast<unsigned char>(q[-1])))
            return;
    // The rest must be a well-formed request line: token SP target SP HTTP/1.x CRLF.
    const std::string_view rest(error_at, static_cast<size_t>(data + length - error_at));
    size_t line_end = rest.find("\r\n");
    if (line_end == std::string_view::npos)
        return;
    const std::string_view line = rest.substr(0, line_end);
    size_t sp1 = 0;
    while (sp1 < line.size() && isTokenChar(static_cast<unsigned char>(line[sp1])))
        ++sp1;
    size_t sp2 = line.rfind(' ');
    if (prefix + sp1 == 0 || sp1 == line.size() || line[sp1] != ' ' || sp2 <= sp1 + 1)
        return;
    for (char c : line.substr(sp1 + 1, sp2 - sp1 - 1))
        if (c == ' ' || isControlByte(static_cast<unsigned char>(c)))
            return;
    const std::string_view version = line.substr(sp2 + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0")
        return;
    error_ = ParseError::MethodNotImplemented;
    error_reason_ = "method not implemented";
}

void HttpParser::resume() {
    llhttp_resume(&parser_);
}

bool HttpParser::finish() {
    llhttp_errno_t rc = llhttp_finish(&parser_);
    return rc == HPE_OK || rc == HPE_PAUSED; // a handler may pause at the message end
}

} // namespace pooled
