// llhttp wrapper: see parser.h.
#include "http/parser.h"

namespace pooled {

namespace {

bool isControlByte(unsigned char c) {
    return (c < 0x20 && c != '\t') || c == 0x7f;
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
    for (size_t i = 0; i < length; ++i)
        if (isControlByte(static_cast<unsigned char>(at[i])))
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
    for (size_t i = 0; i < length; ++i)
        if (isControlByte(static_cast<unsigned char>(at[i])))
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
    for (auto& h : head_.headers) {
        auto trimmed = trim(h.value);
        if (trimmed.size() != h.value.size())
            h.value = std::string(trimmed);
        if (equalsIgnoreCase(h.name, "transfer-encoding")) {
            ++te_count;
            if (te_count > 1 || !equalsIgnoreCase(h.value, "chunked"))
                return fail(ParseError::BadTransferCoding, "unsupported transfer-coding");
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
    h.content_length = (p->flags & F_CONTENT_LENGTH) ? static_cast<int64_t>(p->content_length) : -1;
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

int HttpParser::onMessageDone(llhttp_t* p) {
    auto& s = self(p);
    s.in_message_ = false;
    s.scan_started_ = false; // the next message's head gets its own scan
    return s.handler_.onMessageComplete();
}

bool HttpParser::headEndsWithBareLf(const char* data, size_t length) {
    // llhttp (even strict) takes "\r\n\n" as the end of a head. Scan head bytes,
    // up to the real "\r\n\r\n", for that bare LF; body bytes are never scanned.
    for (size_t i = 0; i < length; ++i) {
        head_tail_ = (head_tail_ << 8) | static_cast<unsigned char>(data[i]);
        if ((head_tail_ & 0xffffffu) == 0x0d0a0a)
            return true;
        if (head_tail_ == 0x0d0a0d0a) {
            head_tail_ = 0;
            scan_done_ = true;
            return false;
        }
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
    }
    return {Status::Error, consumed};
}

void HttpParser::resume() {
    llhttp_resume(&parser_);
}

bool HttpParser::finish() {
    llhttp_errno_t rc = llhttp_finish(&parser_);
    return rc == HPE_OK || rc == HPE_PAUSED; // a handler may pause at the message end
}

} // namespace pooled
