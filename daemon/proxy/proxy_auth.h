// Proxy authentication: Proxy-Authorization: Basic checked against an htpasswd-style file
// of crypt(3) hashes ($5$/$6$ SHA-crypt, $2y$/$2b$ bcrypt and $y$ yescrypt where libcrypt
// has them). The file is read once, when the config is loaded (start and reload).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pooled {

// A bad credentials file: `line` is 1-based within it, 0 for the whole file.
struct CredentialsError : std::runtime_error {
    CredentialsError(int line, const std::string& message)
        : std::runtime_error(message), line(line) {}
    int line;
};

class Credentials {
public:
    // "user:hash" lines; blank lines and lines starting with '#' are skipped.
    static Credentials parse(std::string_view text);
    static Credentials load(const std::string& path);

    Credentials() = default;
    Credentials(Credentials&& other) noexcept : users_(std::move(other.users_)) {}

    size_t size() const { return users_.size(); }
    // The value of a Proxy-Authorization header: "Basic base64(user:password)".
    // Runs crypt(3), which costs milliseconds by design: call it off the event loop
    // (AuthCheck) unless verified() already said yes. Thread-safe.
    bool check(std::string_view header_value) const;
    // Cheap: this header value passed check() recently.
    bool verified(std::string_view header_value) const;

private:
    std::map<std::string, std::string, std::less<>> users_; // user -> crypt(3) hash
    // Header values already verified: SHA-crypt costs milliseconds, paid once per value,
    // not once per request. Bounded; cleared when full.
    mutable std::mutex mutex_;
    mutable std::set<std::string, std::less<>> verified_;
};

// The 407 response asking for credentials (Connection: close).
std::string renderProxyAuthRequired(std::string_view proxy_name, const std::string& realm);

} // namespace pooled
