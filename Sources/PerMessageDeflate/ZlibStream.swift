internal import CSocketIOShims
internal import CSocketIOZlib
package import NIOCore

/// Errors of the deflate layer.
public enum PerMessageDeflateError: Error, Hashable, Sendable {
    /// The inflated message would exceed the configured limit (close code 1009).
    case messageTooLarge(limit: Int)
    /// The compressed data is not valid raw deflate (close code 1007).
    case invalidData
    /// zlib could not set up a stream (out of memory, or an invalid parameter).
    case zlibFailure(Int32)
    /// A frame broke RFC 6455 (an unmasked client frame; close code 1002).
    case protocolViolation
}

/// One zlib stream, deflating or inflating raw deflate (RFC 1951) data.
///
/// The `z_stream` is allocated once and never moves: zlib keeps pointers into it. Input and
/// output pointers are cleared after every call, so the stream never points into a `ByteBuffer`.
/// `end()` is idempotent; `deinit` frees everything.
package final class ZlibStream {
    package enum Kind {
        case deflate
        case inflate
    }

    package let kind: Kind
    private let stream: UnsafeMutablePointer<z_stream>
    private var isOpen = false

    /// A raw-deflate compressor. `windowBits` 9–15 (zlib refuses 8 for raw deflate).
    package init(deflateWindowBits windowBits: Int32, memLevel: Int32, level: Int32) throws(PerMessageDeflateError) {
        self.kind = .deflate
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        let rc = CShims_deflateInit2(self.stream, level, Z_DEFLATED, -windowBits, memLevel, Z_DEFAULT_STRATEGY)
        guard rc == Z_OK else {
            self.stream.deallocate()
            throw .zlibFailure(rc)
        }
        self.isOpen = true
    }

    /// A raw-deflate decompressor with a 15-bit window (which decodes any smaller window).
    package init(inflateWindowBits windowBits: Int32 = 15) throws(PerMessageDeflateError) {
        self.kind = .inflate
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        let rc = CShims_inflateInit2(self.stream, -windowBits)
        guard rc == Z_OK else {
            self.stream.deallocate()
            throw .zlibFailure(rc)
        }
        self.isOpen = true
    }

    deinit {
        self.end()
        self.stream.deallocate()
    }

    /// Frees zlib's state; later calls do nothing.
    package func end() {
        guard self.isOpen else { return }
        self.isOpen = false
        switch self.kind {
        case .deflate: _ = deflateEnd(self.stream)
        case .inflate: _ = inflateEnd(self.stream)
        }
    }

    /// Forgets the sliding window (no context takeover between messages).
    package func reset() {
        guard self.isOpen else { return }
        switch self.kind {
        case .deflate: _ = deflateReset(self.stream)
        case .inflate: _ = inflateReset(self.stream)
        }
    }

    /// Points the stream at `input` for the duration of `body`, and clears the pointer afterwards
    /// so that the stream never points into a `ByteBuffer` between calls.
    private func withInput(_ input: ByteBufferView, _ body: () -> Void) {
        input.withUnsafeBytes { raw in
            self.stream.pointee.next_in = UnsafeMutablePointer(mutating: raw.bindMemory(to: UInt8.self).baseAddress)
            self.stream.pointee.avail_in = UInt32(raw.count)
            defer {
                self.stream.pointee.next_in = nil
                self.stream.pointee.avail_in = 0
            }
            body()
        }
    }

    /// Compresses all of `input` and sync-flushes, appending to `output` (RFC 7692 §7.2.1: the
    /// result ends with `00 00 FF FF`, which the caller strips).
    package func deflateSync(_ input: ByteBufferView, into output: inout ByteBuffer) throws(PerMessageDeflateError) {
        precondition(self.kind == .deflate && self.isOpen, "deflateSync on a closed or inflating stream")
        var failure: Int32 = Z_OK
        self.withInput(input) {
            while true {
                let chunk = max(256, Int(self.stream.pointee.avail_in) / 2 + 64)
                var rc: Int32 = Z_OK
                var filled = false
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: chunk) { out in
                    self.stream.pointee.next_out = out.bindMemory(to: UInt8.self).baseAddress
                    self.stream.pointee.avail_out = UInt32(out.count)
                    rc = deflate(self.stream, Z_SYNC_FLUSH)
                    let written = out.count - Int(self.stream.pointee.avail_out)
                    filled = self.stream.pointee.avail_out == 0
                    self.stream.pointee.next_out = nil
                    self.stream.pointee.avail_out = 0
                    return written
                }
                if rc != Z_OK && rc != Z_BUF_ERROR {
                    failure = rc
                    return
                }
                // Done once all input is consumed and zlib had room to spare for the flush.
                if self.stream.pointee.avail_in == 0 && !filled { return }
            }
        }
        if failure != Z_OK { throw .zlibFailure(failure) }
    }

    /// Decompresses `input`, appending to `output`; `limit` bounds the bytes this call and earlier
    /// ones (`alreadyProduced`) may produce for one message.
    ///
    /// - Returns: the number of bytes appended.
    package func inflate(
        _ input: ByteBufferView,
        into output: inout ByteBuffer,
        alreadyProduced: Int,
        limit: Int
    ) throws(PerMessageDeflateError) -> Int {
        precondition(self.kind == .inflate && self.isOpen, "inflate on a closed or deflating stream")
        var produced = 0
        var failure: PerMessageDeflateError?
        self.withInput(input) {
            while true {
                let room = min(max(1024, Int(self.stream.pointee.avail_in) * 4), 1 << 20)
                var rc: Int32 = Z_OK
                var filled = false
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { out in
                    self.stream.pointee.next_out = out.bindMemory(to: UInt8.self).baseAddress
                    self.stream.pointee.avail_out = UInt32(out.count)
                    rc = CSocketIOZlib.inflate(self.stream, Z_SYNC_FLUSH)
                    let written = out.count - Int(self.stream.pointee.avail_out)
                    filled = self.stream.pointee.avail_out == 0
                    self.stream.pointee.next_out = nil
                    self.stream.pointee.avail_out = 0
                    produced += written
                    return written
                }
                if alreadyProduced + produced > limit {
                    failure = .messageTooLarge(limit: limit)
                    return
                }
                switch rc {
                case Z_OK, Z_BUF_ERROR:
                    if self.stream.pointee.avail_in == 0 && !filled { return }
                    if rc == Z_BUF_ERROR && !filled {
                        return  // no progress possible: all input used
                    }
                case Z_STREAM_END:
                    // A final block: the next message starts a new stream.
                    _ = inflateReset(self.stream)
                    if self.stream.pointee.avail_in == 0 { return }
                default:
                    failure = .invalidData
                    return
                }
            }
        }
        if let failure { throw failure }
        return produced
    }

    /// The zlib version the process runs with.
    package static var version: String { String(cString: CShims_zlibVersion()) }
}

@available(*, unavailable)
extension ZlibStream: Sendable {}
