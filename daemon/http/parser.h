// llhttp as a member, its callbacks trampolined to a Handler. Collects the head
// into a MessageHead, enforces size limits, and adds the strictness llhttp leaves
// to its user (control bytes in values, Transfer-Encoding other than "chunked",
// a Content-Length past int64, Transfer-Encoding in HTTP/1.0 requests).
#pragma once

#include "http/message.h"

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace pooled {

enum class ParseError {
    None,
    Malformed,        // 400 / 502
    HeadTooLarge,     // 431 / 502
    UriTooLong,       // 414
    BadTransferCoding, // 400 (501 would also be valid; we refuse to guess framing)
    BodyTooLarge,      // 413: over max_body_size, or endless chunk extensions
    MethodNotImplemented // 501: a well-formed method llhttp does not know
};

class HttpParser {
public:
    enum class Kind { Request, Response };

    struct Limits {
        size_t max_head_size = 64 * 1024;
        uint32_t max_header_count = 100;
        size_t max_uri_length = 8 * 1024;
        uint64_t max_body_size = 0; // 0 = no limit; declared sizes count, before any byte
    };

    class Handler {
    public:
        virtual ~Handler() = default;
        // Head complete (head() is filled). Return 0 to go on, 1 when the message
        // has no body (response to HEAD), or HPE_PAUSED to stop after the head.
        virtual int onHead() = 0;
        // Return 0 or HPE_PAUSED.
        virtual int onBody(const char* data, size_t length) = 0;
        // Return 0 or HPE_PAUSED.
        virtual int onMessageComplete() = 0;
    };

    enum class Status { Ok, Paused, Upgrade, Error };
    struct Result {
        Status status;
        size_t consumed; // bytes of the input that were parsed
    };

    HttpParser(Kind kind, Handler& handler, Limits limits);
    HttpParser(const HttpParser&) = delete;
    HttpParser& operator=(const HttpParser&) = delete;

    Result execute(const char* data, size_t length);
    // Resume after Status::Paused (call execute with the unconsumed bytes next).
    void resume();
    // Peer closed: completes a close-delimited message. False if the message was cut.
    bool finish();
    void reset();
    // Takes effect from the next message (a reload between keep-alive requests).
    void setLimits(Limits limits) { limits_ = limits; }

    MessageHead& head() { return head_; }
    const MessageHead& head() const { return head_; }
    ParseError error() const { return error_; }
    const std::string& errorReason() const { return error_reason_; }
    bool inMessage() const { return in_message_; }
    bool headComplete() const { return head_complete_; }
    bool messageNeedsEof() const { return llhttp_message_needs_eof(&parser_) != 0; }
    bool shouldKeepAlive() const { return llhttp_should_keep_alive(&parser_) != 0; }
    // Responses: tell the parser which request method it answers (HEAD has no body).
    void setRequestIsHead(bool is_head) { request_is_head_ = is_head; }

private:
    static int onMessageBegin(llhttp_t* p);
    static int onUrl(llhttp_t* p, const char* at, size_t length);
    static int onStatus(llhttp_t* p, const char* at, size_t length);
    static int onHeaderField(llhttp_t* p, const char* at, size_t length);
    static int onHeaderValue(llhttp_t* p, const char* at, size_t length);
    static int onHeaderFieldComplete(llhttp_t* p);
    static int onHeadersComplete(llhttp_t* p);
    static int onBodyData(llhttp_t* p, const char* at, size_t length);
    static int onChunkHeader(llhttp_t* p);
    static int onChunkExtension(llhttp_t* p, const char* at, size_t length);
    static int onMessageDone(llhttp_t* p);
    static const llhttp_settings_t& settings();

    int fail(ParseError error, const char* reason);
    bool countHeadBytes(size_t length);
    int checkHead();
    bool headEndsWithBareLf(const char* data, size_t length);
    void classifyInvalidMethod(const char* data, size_t length, const char* error_at);

    llhttp_t parser_;
    Handler& handler_;
    Limits limits_;
    MessageHead head_;
    ParseError error_ = ParseError::None;
    std::string error_reason_;
    size_t head_bytes_ = 0;
    uint64_t body_declared_ = 0;   // Content-Length or the chunk sizes announced so far
    size_t chunk_extension_bytes_ = 0;
    bool in_field_ = false;
    uint32_t head_tail_ = 0; // last bytes of the head scanned for a bare LF
    bool scan_started_ = false;
    bool scan_done_ = false;
    bool in_message_ = false;
    bool head_complete_ = false;
    bool request_is_head_ = false;
    const char* exec_start_ = nullptr; // input of the running execute()
    char last_byte_ = 0;               // last byte of the previous execute()
};

} // namespace pooled
