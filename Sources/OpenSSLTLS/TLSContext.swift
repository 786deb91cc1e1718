internal import CSocketIOOpenSSL
internal import CSocketIOShims
import NIOConcurrencyHelpers
public import NIOCore

/// TLS options of the server: certificates, protocol versions, ciphers, ALPN, SNI and client
/// certificates. TLS 1.2 and 1.3 only.
public struct TLSConfiguration: Sendable, Hashable {
    /// A certificate for the server names given (SNI).
    public struct NamedCertificate: Sendable, Hashable {
        /// The server name (exact host name) the certificate is for.
        public var serverName: String
        /// The PEM certificate chain file (leaf first).
        public var certificateChain: String
        /// The PEM private key file (RSA or ECDSA).
        public var privateKey: String

        /// Creates a named certificate.
        public init(serverName: String, certificateChain: String, privateKey: String) {
            self.serverName = serverName
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    /// The default certificate chain (PEM file, leaf first).
    public var certificateChain: String
    /// The default private key (PEM file, RSA or ECDSA).
    public var privateKey: String
    /// More certificates, chosen by the client's SNI server name.
    public var namedCertificates: [NamedCertificate] = []
    /// TLS 1.2 cipher list (OpenSSL syntax). Default: ECDHE with AES-GCM or ChaCha20-Poly1305
    /// only, so every suite has forward secrecy and authenticated encryption.
    public var ciphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    /// TLS 1.3 cipher suites. Default: all three standard AEAD suites.
    public var cipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
    /// ALPN protocols the server accepts, in preference order. Default `http/1.1`.
    public var alpn: [String] = ["http/1.1"]
    /// A PEM file of CA certificates: when set, clients must present a certificate signed by one
    /// of them (mutual TLS).
    public var clientCertificateAuthorities: String? = nil
    /// Time a client has to finish the handshake. Default 10 s.
    public var handshakeTimeout: TimeAmount = .seconds(10)

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - certificateChain: PEM certificate chain file.
    ///   - privateKey: PEM private key file.
    public init(certificateChain: String, privateKey: String) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }
}

/// A TLS setup error, with OpenSSL's explanation.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var description: String
}

/// The server's OpenSSL contexts (`SSL_CTX`), built from a ``TLSConfiguration`` and checked at
/// startup: key and certificate must match, the certificate must be valid now, and the runtime
/// OpenSSL must be 3.x.
///
/// `@unchecked Sendable`: after `init` the contexts are never changed, and OpenSSL's `SSL_CTX` is
/// safe to use from several threads for creating connections (it is reference-counted and
/// internally locked).
public final class TLSContext: @unchecked Sendable {
    let main: OpaquePointer
    private var named: [String: OpaquePointer] = [:]
    private let alpnWire: [UInt8]
    /// The handshake timeout.
    public let handshakeTimeout: TimeAmount

    /// The OpenSSL version the process runs with.
    public static var runtimeVersion: String { String(cString: OpenSSL_version(Int32(OPENSSL_VERSION))) }

    /// Builds the contexts.
    ///
    /// - Throws: ``TLSError`` for an old OpenSSL, unreadable files, a key that does not match its
    ///   certificate, an expired or not yet valid certificate, or a bad cipher list.
    public init(configuration: TLSConfiguration) throws {
        guard CShims_OpenSSL_version_num() >= 0x3000_0000 else {
            throw TLSError(description: "OpenSSL 3.0 or newer is required, found \(Self.runtimeVersion)")
        }
        var wire: [UInt8] = []
        for proto in configuration.alpn {
            let bytes = Array(proto.utf8)
            guard !bytes.isEmpty, bytes.count < 256 else {
                throw TLSError(description: "invalid ALPN protocol \(proto)")
            }
            wire.append(UInt8(bytes.count))
            wire.append(contentsOf: bytes)
        }
        self.alpnWire = wire
        self.handshakeTimeout = configuration.handshakeTimeout
        self.main = try Self.makeContext(
            chain: configuration.certificateChain,
            key: configuration.privateKey,
            configuration: configuration
        )
        for named in configuration.namedCertificates {
            self.named[named.serverName.lowercased()] = try Self.makeContext(
                chain: named.certificateChain,
                key: named.privateKey,
                configuration: configuration
            )
        }
        let this = Unmanaged.passUnretained(self).toOpaque()
        for ctx in [self.main] + Array(self.named.values) {
            SSL_CTX_set_alpn_select_cb(ctx, tlsALPNSelect, this)
        }
        if !self.named.isEmpty {
            _ = CShims_SSL_CTX_set_servername_callback(self.main, tlsServerName, this)
        }
    }

    deinit {
        SSL_CTX_free(self.main)
        for ctx in self.named.values { SSL_CTX_free(ctx) }
    }

    private static func makeContext(chain: String, key: String, configuration: TLSConfiguration) throws -> OpaquePointer
    {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError(description: "SSL_CTX_new: \(drainErrors())")
        }
        var ok = false
        defer { if !ok { SSL_CTX_free(ctx) } }
        guard CShims_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 else {
            throw TLSError(description: "cannot require TLS 1.2: \(drainErrors())")
        }
        _ = SSL_CTX_set_options(
            ctx,
            CShims_SSL_OP_NO_COMPRESSION() | CShims_SSL_OP_NO_RENEGOTIATION()
                | CShims_SSL_OP_CIPHER_SERVER_PREFERENCE()
        )
        _ = CShims_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        guard SSL_CTX_set_cipher_list(ctx, configuration.ciphers) == 1 else {
            throw TLSError(description: "invalid cipher list: \(drainErrors())")
        }
        guard SSL_CTX_set_ciphersuites(ctx, configuration.cipherSuites) == 1 else {
            throw TLSError(description: "invalid TLS 1.3 cipher suites: \(drainErrors())")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, chain) == 1 else {
            throw TLSError(description: "cannot load certificate chain \(chain): \(drainErrors())")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
            let errors = drainErrors()
            if errors.contains("mismatch") {
                throw TLSError(description: "the private key \(key) does not match the certificate \(chain)")
            }
            throw TLSError(description: "cannot load private key \(key): \(errors)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError(description: "the private key \(key) does not match the certificate \(chain)")
        }
        if let certificate = SSL_CTX_get0_certificate(ctx) {
            if X509_cmp_current_time(X509_get0_notAfter(certificate)) < 0 {
                throw TLSError(description: "the certificate \(chain) has expired")
            }
            if X509_cmp_current_time(X509_get0_notBefore(certificate)) > 0 {
                throw TLSError(description: "the certificate \(chain) is not valid yet")
            }
        }
        if let ca = configuration.clientCertificateAuthorities {
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1, let names = SSL_load_client_CA_file(ca) else {
                throw TLSError(description: "cannot load client CA file \(ca): \(drainErrors())")
            }
            SSL_CTX_set_client_CA_list(ctx, names)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
        ok = true
        return ctx
    }

    fileprivate func selectALPN(
        _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
        _ outLength: UnsafeMutablePointer<UInt8>?,
        _ offered: UnsafePointer<UInt8>?,
        _ offeredLength: UInt32
    ) -> Int32 {
        self.alpnWire.withUnsafeBufferPointer { server in
            var selected: UnsafeMutablePointer<UInt8>?
            let rc = SSL_select_next_proto(
                &selected,
                outLength,
                server.baseAddress,
                UInt32(server.count),
                offered,
                offeredLength
            )
            guard rc == OPENSSL_NPN_NEGOTIATED, let selected else { return SSL_TLSEXT_ERR_NOACK }
            // `selected` points into the server list, which lives as long as this context.
            out?.pointee = UnsafePointer(selected)
            return SSL_TLSEXT_ERR_OK
        }
    }

    fileprivate func selectServerName(_ ssl: OpaquePointer?) -> Int32 {
        guard let ssl, let raw = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else { return SSL_TLSEXT_ERR_OK }
        if let ctx = self.named[String(cString: raw).lowercased()] { SSL_set_SSL_CTX(ssl, ctx) }
        return SSL_TLSEXT_ERR_OK
    }
}

private func tlsALPNSelect(
    _ ssl: OpaquePointer?,
    _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    _ outLength: UnsafeMutablePointer<UInt8>?,
    _ offered: UnsafePointer<UInt8>?,
    _ offeredLength: UInt32,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let arg else { return SSL_TLSEXT_ERR_NOACK }
    return Unmanaged<TLSContext>.fromOpaque(arg).takeUnretainedValue().selectALPN(
        out,
        outLength,
        offered,
        offeredLength
    )
}

private func tlsServerName(
    _ ssl: OpaquePointer?,
    _ alert: UnsafeMutablePointer<Int32>?,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let arg else { return SSL_TLSEXT_ERR_OK }
    return Unmanaged<TLSContext>.fromOpaque(arg).takeUnretainedValue().selectServerName(ssl)
}

/// Empties OpenSSL's error queue into one line.
func drainErrors() -> String {
    var messages: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        messages.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }
    return messages.isEmpty ? "unknown error" : messages.joined(separator: "; ")
}

/// A ``TLSContext`` that can be replaced at run time (certificate reload on SIGHUP): new
/// connections use the newest context, live connections keep theirs.
public final class TLSContextHolder: Sendable {
    private let box: NIOLockedValueBox<TLSContext>

    /// Holds `context`.
    public init(_ context: TLSContext) { self.box = NIOLockedValueBox(context) }

    /// The context for new connections.
    public var current: TLSContext { self.box.withLockedValue { $0 } }

    /// Replaces the context for new connections.
    public func replace(with context: TLSContext) { self.box.withLockedValue { $0 = context } }
}
