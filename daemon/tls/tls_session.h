// One TLS client connection over a libuv stream, without blocking: ciphertext read by
// the owner is lent to mbedTLS (copied only when a record is left half-read), and
// ciphertext mbedTLS produces goes straight to the owner's writer. The owner drives the
// handshake as bytes arrive and pulls plaintext while it has room for it.
#pragma once

#include "http/proxy_status.h"
#include "pool/pool_key.h"
#include "tls/ip_san.h"

#include <mbedtls/ssl.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pooled {

class TlsContext;

class TlsSession {
public:
    // Where ciphertext goes: returns 0 or a libuv error.
    class Transport {
    public:
        virtual ~Transport() = default;
        virtual int sendCiphertext(const char* data, size_t length) = 0;
    };

    enum class Step { Done, WantRead, Failed };
    // read(): bytes > 0, or one of these.
    static constexpr long kWantRead = 0;
    static constexpr long kPeerClosed = -1; // close_notify: a clean end of stream
    static constexpr long kFailed = -2;

    TlsSession(TlsContext& context, const PoolKey& key, Transport& transport);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // Ciphertext just read: used in place until release() keeps what is left.
    void lend(const char* data, size_t length);
    void release();

    // Continues the handshake on the loop, cheap steps only (see runSteps). Done:
    // application data may be written, which with False Start (RFC 7918) is before the
    // origin's Finished arrived; read() completes the handshake then. On Failed,
    // error() says why.
    Step handshake();
    // handshake() in two halves, so that the costly steps can run on libuv's thread
    // pool (tls/handshake_job.h): runSteps() calls only mbedTLS on this session and
    // touches no TlsContext (nor the transport while sends are deferred); finishSteps()
    // takes its result on the loop (False Start decision, session cache, errors).
    // With cheap_only, runSteps stops before a step that needs the pool: kPoolNext.
    static constexpr int kPoolNext = 1;
    int runSteps(bool cheap_only);
    Step finishSteps(int rc);
    // From now until flushDeferredSends() ciphertext collects here instead of going to
    // the transport, which belongs to the loop thread.
    void deferSends() { defer_sends_ = true; }
    // On the loop: what collected goes out in one write.
    void flushDeferredSends();
    // The whole handshake is over, the origin's Finished verified.
    bool established() const { return established_; }
    // The origin accepted the offered session: no certificate exchange happened.
    bool resumed() const { return resumed_; }

    // Decrypts into buf up to `capacity` bytes, first finishing a False Start handshake.
    long read(char* buf, size_t capacity);
    // Decrypted or undecrypted bytes wait inside (the owner stopped reading).
    bool hasPendingInput() const;
    // Encrypts and sends all of `data`; 0 or a libuv / mbedTLS error (error() says).
    int write(std::string_view data);
    // Sends close_notify once (best effort: the socket is about to close).
    void closeNotify();

    const ProxyError& error() const { return error_; }
    // The peer closed or reset the connection mid-handshake (`what`: "closed the
    // connection"): the error to report, with a client-certificate hint if it applies.
    ProxyError handshakeAborted(const std::string& what) const;

private:
    static int bioSend(void* self, const unsigned char* data, size_t length);
    static int bioRecv(void* self, unsigned char* buf, size_t length);
    // mbedTLS verify callback for an IP-literal origin: flags a leaf without the IP SAN.
    static int verifyIpSan(void* self, mbedtls_x509_crt* crt, int depth, uint32_t* flags);
    void failHandshake(int rc);
    bool mayFalseStart() const;
    bool nextStepIsCostly() const;
    int writeEarly(std::string_view data);
    long endOfInput(int rc);
    std::string clientCertificateHint() const;

    TlsContext& context_;
    PoolKey key_;
    Transport& transport_;
    std::string verify_name_; // the server_name override, else the origin's host
    std::optional<IpAddressBytes> verify_ip_; // verify_name_ as an address, if it is one
    mbedtls_ssl_context ssl_;
    bool setup_ok_ = false;
    bool established_ = false;
    bool false_start_ = true; // the profile allows it
    bool false_started_ = false;
    bool resumed_ = false;
    bool offered_session_ = false;
    bool close_notify_sent_ = false;
    int send_error_ = 0;
    int pending_end_ = 0; // close_notify or an error met after plaintext not yet handed over
    ProxyError error_;
    bool defer_sends_ = false;
    std::string outbox_;

    // Input: a lent slice of the current read, then what earlier reads left over.
    std::string stash_;
    size_t stash_pos_ = 0;
    const char* lent_ = nullptr;
    size_t lent_size_ = 0;
};

// "certificate expired", "unknown CA", "host name mismatch", ... from verify flags.
std::string describeVerifyFlags(uint32_t flags);
// The detail of a failed verification of `name`; for an IP literal the name mismatch
// reads as a missing IP SAN.
std::string describeVerifyFailure(uint32_t flags, const std::string& name, bool ip_literal);

} // namespace pooled
