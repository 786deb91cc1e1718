internal import CSocketIOShims
internal import CSocketIOZlib
public import NIOCore

/// One-shot HTTP body compression (`Content-Encoding: gzip` or `deflate`) for long-polling
/// responses, through the same system zlib as permessage-deflate.
public enum HTTPBodyCompressor {
    /// An HTTP content coding.
    public enum Coding: String, Sendable {
        /// RFC 1952 gzip.
        case gzip
        /// RFC 1950 zlib ("deflate" in HTTP).
        case deflate
    }

    /// The coding to use for a request's `Accept-Encoding` (gzip preferred), or `nil`.
    ///
    /// - Parameter acceptEncoding: the header's values.
    /// - Returns: the chosen coding.
    public static func preferredCoding(acceptEncoding: [String]) -> Coding? {
        var accepted = Set<String>()
        for value in acceptEncoding {
            for item in value.split(separator: ",") {
                let parts = item.split(separator: ";")
                let name = parts.first.map { String($0).trimmingSpacesAndTabs.lowercased() } ?? ""
                // q=0 means "not acceptable".
                let refused = parts.dropFirst().contains { $0.trimmingSpacesAndTabs.replacingSpaces == "q=0" }
                if !refused { accepted.insert(name) }
            }
        }
        if accepted.contains("gzip") { return .gzip }
        if accepted.contains("deflate") { return .deflate }
        return nil
    }

    /// Compresses `body` completely.
    ///
    /// - Returns: the compressed body, or `nil` if zlib failed (send it uncompressed then).
    public static func compress(_ body: ByteBuffer, coding: Coding, level: Int32 = 6) -> ByteBuffer? {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        // windowBits 15 + 16 asks zlib for the gzip wrapper; plain 15 for the zlib wrapper.
        let windowBits: Int32 = coding == .gzip ? 31 : 15
        guard CShims_deflateInit2(stream, level, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY) == Z_OK else {
            return nil
        }
        defer { deflateEnd(stream) }
        var output = ByteBuffer()
        output.reserveCapacity(Int(deflateBound(stream, UInt(body.readableBytes))) + 16)
        var ok = false
        body.withUnsafeReadableBytes { input in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: UInt8.self).baseAddress)
            stream.pointee.avail_in = UInt32(input.count)
            defer {
                stream.pointee.next_in = nil
                stream.pointee.avail_in = 0
            }
            while true {
                var rc: Int32 = Z_OK
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: 4096) { out in
                    stream.pointee.next_out = out.bindMemory(to: UInt8.self).baseAddress
                    stream.pointee.avail_out = UInt32(out.count)
                    rc = deflate(stream, Z_FINISH)
                    let written = out.count - Int(stream.pointee.avail_out)
                    stream.pointee.next_out = nil
                    stream.pointee.avail_out = 0
                    return written
                }
                if rc == Z_STREAM_END {
                    ok = true
                    return
                }
                if rc != Z_OK && rc != Z_BUF_ERROR { return }
            }
        }
        return ok ? output : nil
    }
}

extension String {
    var replacingSpaces: String { self.filter { $0 != " " } }
}
