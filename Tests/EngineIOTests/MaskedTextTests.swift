import EngineIO
import NIOCore
import NIOWebSocket
import Testing

/// The word-at-a-time unmasking of ASCII messages, against byte-by-byte unmasking.
@Suite struct MaskedTextTests {
    private func masked(_ bytes: [UInt8], key: WebSocketMaskingKey) -> ByteBuffer {
        var buffer = ByteBuffer(bytes: bytes)
        buffer.webSocketMask(key)
        return buffer
    }

    @Test func unmasksEveryLengthAndKey() {
        var generator = SystemRandomNumberGenerator()
        for length in 1...70 {
            for _ in 0..<8 {
                let key = WebSocketMaskingKey.random(using: &generator)
                let body = (1..<length).map { _ in UInt8.random(in: 0x20...0x7e, using: &generator) }
                let text = MaskedText.asciiMessage(masked: self.masked([UInt8(ascii: "4")] + body, key: key), key: key)
                #expect(text == String(decoding: body, as: UTF8.self), "length \(length)")
            }
        }
    }

    @Test func refusesNonASCIIAtEveryPosition() {
        let key = WebSocketMaskingKey([0x12, 0x9a, 0x00, 0xff])!
        for length in 2...40 {
            for position in 1..<length {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                bytes[0] = UInt8(ascii: "4")
                bytes[position] = 0xc3
                #expect(MaskedText.asciiMessage(masked: self.masked(bytes, key: key), key: key) == nil)
            }
        }
    }

    @Test func refusesOtherPacketTypesAndEmptyFrames() {
        let key = WebSocketMaskingKey([1, 2, 3, 4])!
        #expect(MaskedText.asciiMessage(masked: self.masked(Array("2probe".utf8), key: key), key: key) == nil)
        #expect(MaskedText.asciiMessage(masked: ByteBuffer(), key: key) == nil)
        #expect(MaskedText.asciiMessage(masked: self.masked([UInt8(ascii: "4")], key: key), key: key) == "")
    }
}
