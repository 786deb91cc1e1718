import NIOCore

/// The `Sec-WebSocket-Accept` value of an opening handshake (RFC 6455 §4.2.2): base64 of the
/// SHA-1 of the client's key followed by the protocol's GUID.
public enum WebSocketAccept {
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The accept value for `key`, the client's `Sec-WebSocket-Key`.
    public static func value(forKey key: Substring) -> String {
        var input = [UInt8]()
        input.reserveCapacity(key.utf8.count + Self.guid.utf8.count)
        input.append(contentsOf: key.utf8)
        input.append(contentsOf: Self.guid.utf8)
        let digest = input.withUnsafeBufferPointer { SHA1.hash($0) }
        return withUnsafeBytes(of: digest) { Base64.string($0) }
    }
}

/// SHA-1 (FIPS 180-4), only for the WebSocket handshake, where the protocol fixes it; it is not
/// used for anything that needs collision resistance.
package enum SHA1 {
    /// The digest of `message`, as bytes.
    package static func digest(_ message: [UInt8]) -> [UInt8] {
        let digest = message.withUnsafeBufferPointer { self.hash($0) }
        return withUnsafeBytes(of: digest) { Array($0) }
    }

    /// The digest of `message`: 20 bytes in a tuple of five big-endian-ordered words' bytes (the
    /// tuple's memory is the digest). No heap allocation: the padded tail and the message
    /// schedule live on the stack.
    package static func hash(
        _ message: UnsafeBufferPointer<UInt8>
    ) -> (UInt32, UInt32, UInt32, UInt32, UInt32) {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (
            0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0
        )
        let count = message.count
        // Whole blocks straight from the message; the rest, 0x80, zeros to 56 mod 64 and the
        // length in bits (big-endian) in a tail of one or two blocks.
        let wholeBlocks = count / 64
        let rest = count - wholeBlocks * 64
        let tailCount = rest < 56 ? 64 : 128
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 80) { w in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { tail in
                tail.initialize(repeating: 0)
                for i in 0..<rest { tail[i] = message[wholeBlocks * 64 + i] }
                tail[rest] = 0x80
                let bits = UInt64(count) &* 8
                for i in 0..<8 { tail[tailCount - 1 - i] = UInt8(truncatingIfNeeded: bits >> UInt64(i * 8)) }
                func compress(_ block: UnsafeBufferPointer<UInt8>) {
                    for i in 0..<16 {
                        let j = i * 4
                        w[i] =
                            UInt32(block[j]) << 24 | UInt32(block[j + 1]) << 16 | UInt32(block[j + 2]) << 8
                            | UInt32(block[j + 3])
                    }
                    for i in 16..<80 {
                        let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                        w[i] = x << 1 | x >> 31
                    }
                    var (a, b, c, d, e) = h
                    for i in 0..<80 {
                        let f: UInt32
                        let k: UInt32
                        switch i {
                        case 0..<20:
                            f = (b & c) | (~b & d)
                            k = 0x5A82_7999
                        case 20..<40:
                            f = b ^ c ^ d
                            k = 0x6ED9_EBA1
                        case 40..<60:
                            f = (b & c) | (b & d) | (c & d)
                            k = 0x8F1B_BCDC
                        default:
                            f = b ^ c ^ d
                            k = 0xCA62_C1D6
                        }
                        let t = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
                        e = d
                        d = c
                        c = b << 30 | b >> 2
                        b = a
                        a = t
                    }
                    h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
                }
                for block in 0..<wholeBlocks {
                    compress(UnsafeBufferPointer(rebasing: message[(block * 64)..<(block * 64 + 64)]))
                }
                let padded = UnsafeBufferPointer(tail)
                compress(UnsafeBufferPointer(rebasing: padded[0..<64]))
                if tailCount == 128 { compress(UnsafeBufferPointer(rebasing: padded[64..<128])) }
            }
        }
        return (h.0.bigEndian, h.1.bigEndian, h.2.bigEndian, h.3.bigEndian, h.4.bigEndian)
    }
}
