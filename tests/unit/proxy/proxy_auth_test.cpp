// Specification of proxy authentication: the htpasswd-style credentials file and the
// Proxy-Authorization: Basic check.
#include "config/config_loader.h"
#include "proxy/proxy_auth.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using namespace pooled;

namespace {

// "secret", hashed by `openssl passwd -6 -salt abcdefgh secret` and `-5`.
const std::string kSha512 =
    "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/"
    "cZ/1GM/O6IND4WQhG.";
const std::string kSha256 = "$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.";

int errorLine(const std::string& text) {
    try {
        Credentials::parse(text);
    } catch (const CredentialsError& e) {
        return e.line;
    }
    FAIL("expected a CredentialsError for:\n" << text);
    return -1;
}

} // namespace

TEST_CASE("an htpasswd file of SHA-crypt hashes is read, comments and blanks skipped", "[auth]") {
    const Credentials c = Credentials::parse("# users\n\nalice:" + kSha512 + "\r\nbob:" +
                                             kSha256 + "\n");
    CHECK(c.size() == 2);
    // alice:secret, bob:secret
    CHECK(c.check("Basic YWxpY2U6c2VjcmV0"));
    CHECK(c.check("basic   Ym9iOnNlY3JldA=="));
    CHECK(c.check("Basic YWxpY2U6c2VjcmV0")); // cached the second time
}

TEST_CASE("wrong, unknown or malformed credentials are refused", "[auth]") {
    const Credentials c = Credentials::parse("alice:" + kSha512 + "\n");
    CHECK_FALSE(c.check("Basic YWxpY2U6d3Jvbmc="));   // alice:wrong
    CHECK_FALSE(c.check("Basic Y2Fyb2w6c2VjcmV0"));   // carol:secret
    CHECK_FALSE(c.check("Bearer YWxpY2U6c2VjcmV0"));
    CHECK_FALSE(c.check("Basic YWxpY2U6c2VjcmV0!"));
    CHECK_FALSE(c.check("Basic YWxpY2U="));           // "alice", no colon
    CHECK_FALSE(c.check("Basic "));
    CHECK_FALSE(c.check(""));
}

TEST_CASE("a bad credentials file names the line", "[auth]") {
    CHECK(errorLine("alice:" + kSha512 + "\nbob\n") == 2);
    CHECK(errorLine("alice:plaintext\n") == 1);
    CHECK(errorLine("alice:$9$nosuchmethod$x\n") == 1);
    CHECK(errorLine("alice:" + kSha512 + "\nalice:" + kSha256 + "\n") == 2);
    CHECK(errorLine("# nobody\n") == 0);
}

TEST_CASE("the 407 carries the Basic challenge and closes", "[auth]") {
    const std::string r = renderProxyAuthRequired("pooled", "corp \"proxy\"");
    CHECK(r.rfind("HTTP/1.1 407 Proxy Authentication Required\r\n"
                  "Proxy-Authenticate: Basic realm=\"corp \\\"proxy\\\"\"\r\n",
                  0) == 0);
    CHECK_THAT(r, Catch::Contains("Proxy-Status: pooled; error=http_request_denied"));
    CHECK_THAT(r, Catch::Contains("Connection: close\r\n"));
}

TEST_CASE("proxy_auth in the config loads the file and reports its errors", "[auth][config]") {
    const auto dir = std::filesystem::temp_directory_path() / "pooled-auth-test";
    std::filesystem::create_directories(dir);
    const auto good = (dir / "good").string();
    const auto bad = (dir / "bad").string();
    std::ofstream(good) << "alice:" << kSha512 << "\n";
    std::ofstream(bad) << "alice:" << kSha512 << "\nbroken line\n";
    const Config c = loadConfigString(
        "access:\n  proxy_auth:\n    realm: corp\n    credentials_file: " + good + "\n", "t");
    REQUIRE(c.access.proxy_auth.credentials);
    CHECK(c.access.proxy_auth.realm == "corp");
    CHECK(c.access.proxy_auth.credentials->check("Basic YWxpY2U6c2VjcmV0"));
    try {
        loadConfigString("access:\n  proxy_auth:\n    credentials_file: " + bad + "\n", "t");
        FAIL("expected a ConfigError");
    } catch (const ConfigError& e) {
        CHECK(e.key() == "access.proxy_auth.credentials_file");
        CHECK(e.line() == 3);
        CHECK_THAT(e.message(), Catch::Contains(bad + ":2: expected user:hash"));
    }
    try {
        loadConfigString("access:\n  proxy_auth:\n    realm: corp\n", "t");
        FAIL("expected a ConfigError");
    } catch (const ConfigError& e) {
        CHECK(e.key() == "access.proxy_auth.credentials_file");
    }
    std::filesystem::remove_all(dir);
}
