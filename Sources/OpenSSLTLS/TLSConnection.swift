internal import CSocketIOOpenSSL
internal import CSocketIOShims
import NIOCore

/// One TLS connection: an OpenSSL `SSL` between two memory BIOs. Ciphertext from the network is
/// fed in, plaintext comes out, and whatever OpenSSL wants to send waits in the outgoing BIO. It
/// never touches a channel; the handler decides what happens next.
final class TLSConnection {
    /// The outcome of a step that may need more input.
    enum Step: Equatable {
        case complete
        case incomplete
        case failed(String)
    }

    /// The outcome of reading plaintext.
    enum Read: Equatable {
        case data(Int)
        case wantMore
        case closedByPeer
        case failed(String)
    }

    private let ssl: OpaquePointer
    private let incoming: OpaquePointer
    private let outgoing: OpaquePointer

    init?(context: TLSContext) {
        guard let ssl = SSL_new(context.main) else { return nil }
        guard let incoming = BIO_new(BIO_s_mem()), let outgoing = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            return nil
        }
        self.ssl = ssl
        self.incoming = incoming
        self.outgoing = outgoing
        // The SSL takes ownership of both BIOs and frees them with itself.
        SSL_set_bio(ssl, incoming, outgoing)
        SSL_set_accept_state(ssl)
    }

    deinit {
        SSL_free(self.ssl)
    }

    /// Hands ciphertext from the network to OpenSSL.
    func consume(_ bytes: ByteBuffer) {
        bytes.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = BIO_write(
                    self.incoming,
                    raw.baseAddress! + offset,
                    Int32(min(raw.count - offset, Int(Int32.max)))
                )
                if n <= 0 { break }
                offset += Int(n)
            }
        }
    }

    /// Ciphertext OpenSSL wants sent, if any.
    func takeOutgoing(allocator: ByteBufferAllocator) -> ByteBuffer? {
        let pending = CShims_BIO_pending(self.outgoing)
        guard pending > 0 else { return nil }
        var buffer = allocator.buffer(capacity: Int(pending))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(pending)) { out in
            Int(max(0, BIO_read(self.outgoing, out.baseAddress, Int32(out.count))))
        }
        return buffer
    }

    /// Advances the server handshake.
    func handshake() -> Step {
        let rc = SSL_do_handshake(self.ssl)
        if rc == 1 { return .complete }
        switch SSL_get_error(self.ssl, rc) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .incomplete
        default: return .failed(drainErrors())
        }
    }

    /// Decrypts what is available into `buffer` (at least `capacity` bytes of room are made).
    func read(into buffer: inout ByteBuffer, capacity: Int) -> Read {
        var rc: Int32 = 0
        let written = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { out in
            rc = SSL_read(self.ssl, out.baseAddress, Int32(out.count))
            return rc > 0 ? Int(rc) : 0
        }
        if rc > 0 { return .data(written) }
        switch SSL_get_error(self.ssl, rc) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wantMore
        case SSL_ERROR_ZERO_RETURN: return .closedByPeer
        default: return .failed(drainErrors())
        }
    }

    /// Encrypts all of `plaintext` (the ciphertext then waits in the outgoing BIO).
    func write(_ plaintext: ByteBuffer) -> Step {
        var failure: String?
        plaintext.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = SSL_write(self.ssl, raw.baseAddress! + offset, Int32(min(raw.count - offset, 1 << 30)))
                if n <= 0 {
                    failure = drainErrors()
                    return
                }
                offset += Int(n)
            }
        }
        if let failure { return .failed(failure) }
        return .complete
    }

    /// Sends close_notify.
    func shutdown() {
        _ = SSL_shutdown(self.ssl)
    }

    /// The ALPN protocol agreed on, if any.
    var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(self.ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The protocol version, such as `TLSv1.3`.
    var protocolVersion: String { String(cString: SSL_get_version(self.ssl)) }
}

@available(*, unavailable)
extension TLSConnection: Sendable {}
