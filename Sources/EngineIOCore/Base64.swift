public import NIOCore

/// Standard base64 (RFC 4648 §4, with `=` padding), as Engine.IO v4 uses for binary messages in
/// polling payloads.
///
/// Written here rather than taken from Foundation so that the codec stays free of Foundation and
/// can write straight into a `ByteBuffer` without intermediate `Data` or `String` values.
public enum Base64 {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8
    )

    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// The base64 encoding of `bytes` as a string, written straight into the string's storage.
    ///
    /// - Parameter bytes: the bytes to encode.
    /// - Returns: the encoding, with `=` padding.
    public static func string(_ bytes: UnsafeRawBufferPointer) -> String {
        let count = bytes.count
        return String(unsafeUninitializedCapacity: (count + 2) / 3 * 4) { out in
            alphabet.withUnsafeBufferPointer { table in
                var written = 0
                var index = 0
                while index < count {
                    let b1 = index + 1 < count ? bytes[index + 1] : 0
                    let b2 = index + 2 < count ? bytes[index + 2] : 0
                    let n = UInt32(bytes[index]) << 16 | UInt32(b1) << 8 | UInt32(b2)
                    out[written] = table[Int(n >> 18 & 63)]
                    out[written + 1] = table[Int(n >> 12 & 63)]
                    out[written + 2] = index + 1 < count ? table[Int(n >> 6 & 63)] : UInt8(ascii: "=")
                    out[written + 3] = index + 2 < count ? table[Int(n & 63)] : UInt8(ascii: "=")
                    written += 4
                    index += 3
                }
                return written
            }
        }
    }

    /// Appends the base64 encoding of `bytes` to `buffer`.
    ///
    /// - Parameters:
    ///   - bytes: the bytes to encode.
    ///   - buffer: the buffer to append to.
    public static func encode<Bytes: Collection>(_ bytes: Bytes, into buffer: inout ByteBuffer)
    where Bytes.Element == UInt8 {
        let outCount = ((bytes.count + 2) / 3) * 4
        buffer.reserveCapacity(minimumWritableBytes: outCount)
        var iterator = bytes.makeIterator()
        alphabet.withUnsafeBufferPointer { table in
            while let b0 = iterator.next() {
                let b1 = iterator.next()
                let b2 = iterator.next()
                let n = UInt32(b0) << 16 | UInt32(b1 ?? 0) << 8 | UInt32(b2 ?? 0)
                buffer.writeInteger(table[Int(n >> 18 & 63)])
                buffer.writeInteger(table[Int(n >> 12 & 63)])
                buffer.writeInteger(b1 == nil ? UInt8(ascii: "=") : table[Int(n >> 6 & 63)])
                buffer.writeInteger(b2 == nil ? UInt8(ascii: "=") : table[Int(n & 63)])
            }
        }
    }

    /// Decodes standard base64 (padding optional) into a new buffer.
    ///
    /// - Parameter text: the base64 characters.
    /// - Returns: the decoded bytes, or `nil` when `text` is not valid base64.
    public static func decode<Bytes: Collection>(_ text: Bytes) -> ByteBuffer? where Bytes.Element == UInt8 {
        var out = ByteBuffer()
        out.reserveCapacity(text.count / 4 * 3 + 3)
        var acc: UInt32 = 0
        var bits = 0
        var padding = 0
        var count = 0
        for c in text {
            if c == UInt8(ascii: "=") {
                padding += 1
                count += 1
                continue
            }
            if padding > 0 { return nil }  // data after padding
            let v = reverse[Int(c)]
            if v == 0xFF { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            count += 1
            if bits >= 8 {
                bits -= 8
                out.writeInteger(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        if padding > 2 { return nil }
        if padding > 0 && count % 4 != 0 { return nil }
        // A single leftover character cannot encode a byte.
        if (count - padding) % 4 == 1 { return nil }
        // Leftover bits must be zero, as RFC 4648 §3.5 requires of canonical encodings.
        if bits > 0 && acc & ((1 << UInt32(bits)) - 1) != 0 { return nil }
        return out
    }
}
