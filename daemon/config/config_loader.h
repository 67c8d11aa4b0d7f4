// YAML -> Config. Unknown keys and bad values are errors naming the key and its
// line and column; nothing is silently ignored.
#pragma once

#include "config/config.h"

#include <stdexcept>
#include <string>

namespace pooled {

class ConfigError : public std::runtime_error {
public:
    // line/column are 1-based; 0 when unknown (e.g. file missing).
    ConfigError(std::string source, std::string key, int line, int column, std::string message);
    const std::string& source() const { return source_; }
    const std::string& key() const { return key_; }
    int line() const { return line_; }
    int column() const { return column_; }
    const std::string& message() const { return message_; }

private:
    std::string source_, key_, message_;
    int line_, column_;
};

// Parse a YAML document; `source` names it in errors (a path or "<embedded>").
Config loadConfigString(const std::string& yaml, const std::string& source);
Config loadConfigFile(const std::string& path);
// The embedded default configuration (config/default.yaml compiled in).
Config defaultConfig();
const char* defaultConfigYaml();

// "250ms", "30s", "5m", "1h", "0" -> milliseconds; throws std::invalid_argument.
Duration parseDuration(const std::string& text);
// "512", "64KiB", "1MiB", "1GiB", "10KB" (=10*1000) -> bytes; throws std::invalid_argument.
size_t parseSize(const std::string& text);
// "http://host:port" / "https://host" / "http://[::1]:8080" -> target; throws std::invalid_argument.
UpstreamTarget parseUpstreamUrl(const std::string& url);
// "127.0.0.1:3128" / "[::1]:0" -> address (without brackets) and port (0 = ephemeral); the
// route is left empty. IP literals only. Throws std::invalid_argument.
ListenerConfig parseListenAddress(const std::string& text);

} // namespace pooled
