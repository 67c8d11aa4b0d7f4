// Proxy authentication: see proxy_auth.h.
#include "proxy/proxy_auth.h"

#include "http/proxy_status.h"

#include <crypt.h>

#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

namespace pooled {

namespace {

constexpr size_t kMaxVerified = 256;

std::string decodeBase64(std::string_view in, bool& ok) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    ok = false;
    if (in.size() % 4 != 0)
        return out;
    uint32_t bits = 0;
    int count = 0;
    size_t padding = 0;
    for (size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '=') {
            if (i + 2 < in.size())
                return out; // '=' only in the last two places
            ++padding;
            bits <<= 6;
        } else {
            const int v = value(c);
            if (v < 0 || padding > 0)
                return out;
            bits = (bits << 6) | static_cast<uint32_t>(v);
        }
        if (++count == 4) {
            out.push_back(static_cast<char>((bits >> 16) & 0xff));
            out.push_back(static_cast<char>((bits >> 8) & 0xff));
            out.push_back(static_cast<char>(bits & 0xff));
            bits = 0;
            count = 0;
        }
    }
    out.resize(out.size() - padding);
    ok = true;
    return out;
}

// crypt_r with a per-thread work area (struct crypt_data is tens of KiB).
std::string cryptText(const std::string& phrase, const std::string& setting) {
    thread_local std::unique_ptr<crypt_data> data;
    if (!data)
        data = std::make_unique<crypt_data>();
    data->initialized = 0;
    const char* result = crypt_r(phrase.c_str(), setting.c_str(), data.get());
    if (!result || result[0] == '*')
        return {};
    return result;
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i)
        diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

} // namespace

Credentials Credentials::parse(std::string_view text) {
    Credentials credentials;
    std::istringstream in{std::string(text)};
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (line.empty() || line[0] == '#')
            continue;
        const size_t colon = line.find(':');
        if (colon == std::string::npos || colon == 0)
            throw CredentialsError(number, "expected user:hash");
        std::string user = line.substr(0, colon);
        std::string hash = line.substr(colon + 1);
        if (hash.empty() || hash[0] != '$')
            throw CredentialsError(number, "user '" + user +
                                               "': expected a crypt(3) hash such as $6$... "
                                               "(openssl passwd -6)");
        // libcrypt itself decides what it supports: hashing with the entry as the setting
        // fails for an unknown or malformed method.
        if (cryptText("", hash).empty())
            throw CredentialsError(number, "user '" + user + "': hash method '" +
                                               hash.substr(0, hash.find('$', 1) + 1) +
                                               "' is not supported by libcrypt or malformed");
        if (!credentials.users_.emplace(user, std::move(hash)).second)
            throw CredentialsError(number, "duplicate user '" + user + "'");
    }
    if (credentials.users_.empty())
        throw CredentialsError(0, "no users in the credentials file");
    return credentials;
}

Credentials Credentials::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw CredentialsError(0, "cannot read '" + path + "'");
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str());
}

namespace {

// The base64 token of a "Basic" credentials value, without surrounding spaces.
std::optional<std::string_view> basicToken(std::string_view header_value) {
    constexpr std::string_view kScheme = "basic ";
    if (header_value.size() <= kScheme.size())
        return std::nullopt;
    for (size_t i = 0; i < kScheme.size(); ++i)
        if (static_cast<char>(std::tolower(static_cast<unsigned char>(header_value[i]))) !=
            kScheme[i])
            return std::nullopt;
    std::string_view token = header_value.substr(kScheme.size());
    while (!token.empty() && token.front() == ' ')
        token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ')
        token.remove_suffix(1);
    return token;
}

} // namespace

bool Credentials::verified(std::string_view header_value) const {
    auto token = basicToken(header_value);
    if (!token)
        return false;
    std::lock_guard lock(mutex_);
    return verified_.count(*token) > 0;
}

bool Credentials::check(std::string_view header_value) const {
    auto token = basicToken(header_value);
    if (!token)
        return false;
    if (verified(header_value))
        return true;
    bool ok = false;
    const std::string decoded = decodeBase64(*token, ok);
    const size_t colon = decoded.find(':');
    if (!ok || colon == std::string::npos)
        return false;
    auto user = users_.find(std::string_view(decoded).substr(0, colon));
    if (user == users_.end())
        return false;
    const std::string computed = cryptText(decoded.substr(colon + 1), user->second);
    if (computed.empty() || !constantTimeEqual(computed, user->second))
        return false;
    std::lock_guard lock(mutex_);
    if (verified_.size() >= kMaxVerified)
        verified_.clear();
    verified_.emplace(*token);
    return true;
}

std::string renderProxyAuthRequired(std::string_view proxy_name, const std::string& realm) {
    std::string response = renderErrorResponse(
        proxy_name, {407, "http_request_denied", "proxy authentication required"}, true);
    std::string quoted;
    for (char c : realm) {
        if (c == '"' || c == '\\')
            quoted.push_back('\\');
        quoted.push_back(c);
    }
    // After the status line: the challenge is part of the head renderErrorResponse built.
    response.insert(response.find("\r\n") + 2,
                    "Proxy-Authenticate: Basic realm=\"" + quoted + "\"\r\n");
    return response;
}

} // namespace pooled
