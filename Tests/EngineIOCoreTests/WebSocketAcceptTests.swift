import EngineIOCore
import Testing

@Suite struct WebSocketAcceptTests {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    @Test func sha1KnownAnswers() {
        // FIPS 180 examples, plus lengths around the padding boundaries (55, 56, 64 bytes).
        let a = { (count: Int) in [UInt8](repeating: UInt8(ascii: "a"), count: count) }
        let cases: [([UInt8], String)] = [
            ([], "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (Array("abc".utf8), "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
                "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
            ),
            (a(1_000_000), "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
            (a(55), "c1c8bbdc22796e28c0e15163d20899b65621d65a"),
            (a(56), "c2db330f6083854c99d4b5bfb6e8f29f201be699"),
            (a(64), "0098ba824b5c16427bd7a1122a5a442a25ec644d"),
        ]
        for (message, digest) in cases {
            #expect(self.hex(SHA1.digest(message)) == digest, "\(message.count) bytes")
        }
    }

    @Test func acceptValueOfTheRFCExample() {
        // RFC 6455 §1.3.
        #expect(WebSocketAccept.value(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        // Two more keys, the values from Python's hashlib and base64.
        #expect(WebSocketAccept.value(forKey: "x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
        #expect(WebSocketAccept.value(forKey: "AAAAAAAAAAAAAAAAAAAAAA==") == "ICX+Yqv66kxgM0FcWaLWlFLwTAI=")
    }
}
