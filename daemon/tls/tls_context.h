// The per-Worker TLS state: one DRBG, the system CA chain loaded once, one
// mbedtls_ssl_config per TLS profile (with its own CA, client certificate and key),
// and the last session per pool key, offered again so that only the first connection
// to an origin pays a full handshake. Everything is loaded at start: a bad ca_file or
// key is a start-up error naming its key, never a request-time surprise.
#pragma once

#include "config/config.h"
#include "pool/pool_key.h"
#include "tls/handshake_job.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace pooled {

// One way of talking TLS to upstreams: trust, client identity, name to verify.
struct TlsProfile {
    TlsProfile();
    ~TlsProfile();
    TlsProfile(const TlsProfile&) = delete;
    TlsProfile& operator=(const TlsProfile&) = delete;

    UpstreamTlsConfig settings;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;     // used when settings.ca_file is set
    mbedtls_x509_crt cert;   // client certificate chain (mTLS)
    mbedtls_pk_context key;
};

class TlsContext {
public:
    // Seeds the DRBG, loads the CA bundle and builds the profiles `config` names.
    // Throws std::runtime_error naming the config key on any unreadable or bad file.
    explicit TlsContext(const Config& config);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    // Builds the profiles of every route and tls_origination rule not built yet (also
    // for a reloaded config). Throws like the constructor.
    void prepare(const Config& config);

    // The profile named by a PoolKey's tls_profile; nullptr if none was prepared.
    const TlsProfile* profile(const std::string& id) const;

    // The session saved for `key`, or nullptr.
    const mbedtls_ssl_session* session(const PoolKey& key) const;
    // Keeps the session of a completed handshake for the next connection to `key`.
    void saveSession(const PoolKey& key, const mbedtls_ssl_context& ssl);
    void forgetSession(const PoolKey& key);
    size_t sessionCount() const { return sessions_.size(); }

    // Decrypted bytes land here before they go to the parser: one buffer per loop, like
    // the read buffer, because plaintext is handed on before the next read.
    char* plainBuffer() { return plain_.data(); }
    size_t plainBufferSize() const { return plain_.size(); }

    // Handshakes' costly steps run on the thread pool one at a time: see HandshakeQueue.
    HandshakeQueue& handshakeQueue() { return handshake_queue_; }

private:
    struct SessionSlot {
        SessionSlot();
        ~SessionSlot();
        mbedtls_ssl_session session;
    };

    void build(const std::string& config_key, const UpstreamTlsConfig& settings);
    void releaseAll();

    mbedtls_entropy_context entropy_;
    mbedtls_ctr_drbg_context drbg_;
    mbedtls_x509_crt system_ca_;
    bool system_ca_loaded_ = false;
    std::string system_ca_path_;
    std::unordered_map<std::string, std::unique_ptr<TlsProfile>> profiles_;
    std::unordered_map<PoolKey, std::unique_ptr<SessionSlot>, PoolKeyHash> sessions_;
    std::vector<char> plain_;
    HandshakeQueue handshake_queue_;
    const char* alpn_[2] = {"http/1.1", nullptr}; // outlives every profile's conf
};

// mbedtls_strerror as a std::string.
std::string mbedtlsError(int code);

} // namespace pooled
