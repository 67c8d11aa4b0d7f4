// The per-request latency log: formats a RequestRecord as one JSON or text line and hands it to
// a LineWriter, so the event loop only pays for formatting and an append, never for I/O.
#include "observe/access_log.h"

#include <fmt/format.h>

#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace pooled {

namespace {

// ---------------------------------------------------------------------------------------------
// Formatting helpers. Everything appends to a fmt::memory_buffer (inline storage, no iostreams)
// because this runs once per request on the loop thread.

void lit(fmt::memory_buffer& out, std::string_view s) { out.append(s.data(), s.data() + s.size()); }

template <typename Int>
void num(fmt::memory_buffer& out, Int v) {
    const fmt::format_int f(v);
    out.append(f.data(), f.data() + f.size());
}

void digits(char* p, unsigned value, int width) {
    for (int i = width - 1; i >= 0; --i) {
        p[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
}

// RFC 3339 UTC with microseconds. Converted by hand (Howard Hinnant's days->civil algorithm)
// rather than gmtime_r: it is exact, branch-light and touches no libc state.
void appendTime(fmt::memory_buffer& out, int64_t unix_us) {
    constexpr int64_t kUsPerDay = int64_t{86400} * 1000000;
    int64_t days = unix_us / kUsPerDay;
    int64_t rem = unix_us % kUsPerDay;
    if (rem < 0) { // floor division, so pre-1970 instants still format correctly
        rem += kUsPerDay;
        --days;
    }
    const int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    const int64_t day = doy - (153 * mp + 2) / 5 + 1;
    const int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    if (year < 0 || year > 9999) { // RFC 3339 has exactly four year digits; clamp nonsense clocks
        year = year < 0 ? 0 : 9999;
    }

    const int64_t secs = rem / 1000000;
    char buf[27]; // YYYY-MM-DDTHH:MM:SS.uuuuuuZ
    digits(buf, static_cast<unsigned>(year), 4);
    buf[4] = '-';
    digits(buf + 5, static_cast<unsigned>(month), 2);
    buf[7] = '-';
    digits(buf + 8, static_cast<unsigned>(day), 2);
    buf[10] = 'T';
    digits(buf + 11, static_cast<unsigned>(secs / 3600), 2);
    buf[13] = ':';
    digits(buf + 14, static_cast<unsigned>(secs / 60 % 60), 2);
    buf[16] = ':';
    digits(buf + 17, static_cast<unsigned>(secs % 60), 2);
    buf[19] = '.';
    digits(buf + 20, static_cast<unsigned>(rem % 1000000), 6);
    buf[26] = 'Z';
    out.append(buf, buf + sizeof buf);
}

// Microseconds as milliseconds with three decimals, integer arithmetic only.
// Negative means "did not happen"; the caller decides how to spell that.
void appendMs(fmt::memory_buffer& out, int64_t us) {
    num(out, us / 1000);
    char frac[4] = {'.', 0, 0, 0};
    digits(frac + 1, static_cast<unsigned>(us % 1000), 3);
    out.append(frac, frac + sizeof frac);
}

// Length of the well-formed UTF-8 sequence at p (RFC 3629 table 3-7: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 if the bytes there are not one.
size_t utf8Length(const unsigned char* p, size_t avail) {
    const unsigned char c = p[0];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; ++i) {
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    }
    return len;
}

void escapeByte(fmt::memory_buffer& out, unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
    out.append(esc, esc + sizeof esc);
}

// JSON string body (no quotes). Host and path come from untrusted clients, so nothing that could
// break the line, the quoting or a UTF-8 decoder downstream is passed through: control bytes and
// DEL become \u00XX, and so does every byte that is not part of a well-formed UTF-8 sequence.
// Safe runs are copied in bulk; the common all-ASCII path is a single scan and one append.
void appendEscaped(fmt::memory_buffer& out, std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t run = 0;
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        size_t len = 0;
        if (c >= 0x80 && (len = utf8Length(p + i, n - i)) != 0) {
            i += len; // well-formed multi-byte character: part of the run
            continue;
        }
        out.append(s.data() + run, s.data() + i);
        if (c == '"' || c == '\\') {
            const char esc[2] = {'\\', static_cast<char>(c)};
            out.append(esc, esc + 2);
        } else {
            escapeByte(out, c);
        }
        run = ++i;
    }
    out.append(s.data() + run, s.data() + n);
}

void jsonString(fmt::memory_buffer& out, std::string_view key, std::string_view value) {
    lit(out, key);
    out.push_back('"');
    appendEscaped(out, value);
    out.push_back('"');
}

void jsonMs(fmt::memory_buffer& out, std::string_view key, int64_t us) {
    lit(out, key);
    if (us < 0) {
        lit(out, "null");
    } else {
        appendMs(out, us);
    }
}

void appendJson(fmt::memory_buffer& out, const RequestRecord& r) {
    lit(out, "{\"time\":\"");
    appendTime(out, r.start_unix_us);
    out.push_back('"');
    jsonString(out, ",\"client\":", r.client);
    jsonString(out, ",\"method\":", r.method);
    jsonString(out, ",\"scheme\":", r.scheme);
    jsonString(out, ",\"host\":", r.host);
    lit(out, ",\"port\":");
    num(out, r.port);
    jsonString(out, ",\"path\":", r.path);
    jsonString(out, ",\"route\":", r.route);
    lit(out, ",\"status\":");
    num(out, r.status);
    lit(out, ",\"bytes_in\":");
    num(out, r.bytes_in);
    lit(out, ",\"bytes_out\":");
    num(out, r.bytes_out);
    jsonMs(out, ",\"total_ms\":", r.total_us);
    jsonMs(out, ",\"pool_wait_ms\":", r.pool_wait_us);
    jsonMs(out, ",\"dns_ms\":", r.dns_us);
    jsonMs(out, ",\"connect_ms\":", r.connect_us);
    jsonMs(out, ",\"tls_ms\":", r.tls_us);
    lit(out, r.tls_resumed ? ",\"tls_resumed\":true" : ",\"tls_resumed\":false");
    jsonMs(out, ",\"ttfb_ms\":", r.ttfb_us);
    lit(out, r.reused ? ",\"reused\":true" : ",\"reused\":false");
    lit(out, ",\"upstream_conn\":");
    num(out, r.upstream_conn_id);
    lit(out, ",\"upstream_conn_requests\":");
    num(out, r.upstream_conn_requests);
    lit(out, ",\"retries\":");
    num(out, r.retries);
    jsonString(out, ",\"error\":", r.error);
    jsonString(out, ",\"detail\":", r.detail);
    out.push_back('}');
}

void textMs(fmt::memory_buffer& out, std::string_view key, int64_t us) {
    lit(out, key);
    if (us < 0) {
        out.push_back('-');
    } else {
        appendMs(out, us);
        lit(out, "ms");
    }
}

// Text fields are escaped like JSON too: a client-chosen path must not be able to forge a line.
void appendText(fmt::memory_buffer& out, const RequestRecord& r) {
    appendTime(out, r.start_unix_us);
    out.push_back(' ');
    if (r.client.empty()) {
        out.push_back('-');
    } else {
        appendEscaped(out, r.client);
    }
    lit(out, " \"");
    appendEscaped(out, r.method);
    out.push_back(' ');
    if (r.scheme != "tunnel") {
        appendEscaped(out, r.scheme);
        lit(out, "://");
    }
    // An IPv6 literal needs brackets or the port becomes ambiguous.
    const bool v6 = r.host.find(':') != std::string::npos;
    if (v6) out.push_back('[');
    appendEscaped(out, r.host);
    if (v6) out.push_back(']');
    out.push_back(':');
    num(out, r.port);
    if (r.scheme != "tunnel") appendEscaped(out, r.path);
    lit(out, "\" ");
    if (r.status == 0) {
        out.push_back('-');
    } else {
        num(out, r.status);
    }
    lit(out, " in=");
    num(out, r.bytes_in);
    lit(out, " out=");
    num(out, r.bytes_out);
    textMs(out, " total=", r.total_us);
    textMs(out, " wait=", r.pool_wait_us);
    textMs(out, " dns=", r.dns_us);
    textMs(out, " connect=", r.connect_us);
    textMs(out, " tls=", r.tls_us);
    textMs(out, " ttfb=", r.ttfb_us);
    lit(out, r.reused ? " reused" : " new");
    lit(out, " conn=");
    num(out, r.upstream_conn_id);
    out.push_back('/');
    num(out, r.upstream_conn_requests);
    lit(out, " retries=");
    num(out, r.retries);
    if (!r.route.empty()) {
        lit(out, " route=");
        appendEscaped(out, r.route);
    }
    if (!r.error.empty()) {
        lit(out, " error=");
        appendEscaped(out, r.error);
        lit(out, " detail=\"");
        appendEscaped(out, r.detail);
        out.push_back('"');
    }
}

constexpr size_t kMaxBatch = 64 << 10;

} // namespace

AccessLog::AccessLog(const AccessLogConfig& config)
    : enabled_(config.enabled), json_(config.format != "text") {
    if (!enabled_) return; // nothing opened, no thread started: write() is a single branch
    if (config.format != "json" && config.format != "text") {
        throw std::runtime_error("access_log.format must be json or text, got '" + config.format +
                                 "'");
    }
    writer_ = std::make_unique<LineWriter>(config.output);
}

AccessLog::~AccessLog() {
    if (enabled_) endOfTurn(); // the writer delivers what is handed over, then stops
}

void AccessLog::write(const RequestRecord& record) {
    if (!enabled_) return;
    fmt::memory_buffer line;
    if (json_) {
        appendJson(line, record);
    } else {
        appendText(line, record);
    }
    batch_.append(line.data(), line.size());
    batch_.push_back('\n');
    if (batch_.size() >= kMaxBatch) endOfTurn(); // a long turn: do not wait for its end
}

void AccessLog::endOfTurn() {
    if (batch_.empty()) return;
    writer_->write(batch_);
    batch_.clear();
}

void AccessLog::flush() {
    if (!enabled_) return;
    endOfTurn();
    writer_->flush();
}

std::string AccessLog::formatJson(const RequestRecord& record) {
    fmt::memory_buffer out;
    appendJson(out, record);
    return fmt::to_string(out);
}

std::string AccessLog::formatText(const RequestRecord& record) {
    fmt::memory_buffer out;
    appendText(out, record);
    return fmt::to_string(out);
}

} // namespace pooled
