import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import EngineIO

/// The chunked body reader: drip-fed at every split, checked against NIO's parser on random
/// bodies, and its limits enforced before the bytes they bound have arrived.
@Suite struct HTTPChunkedDecoderTests {
    /// Decodes `bytes` fed in pieces of `step` bytes: the body, whether it ended, the error.
    private func decode(
        _ bytes: [UInt8],
        step: Int,
        maxBodySize: Int = 1 << 20
    ) -> (body: [UInt8], ended: Bool, rest: Int, error: HTTPChunkedDecoder.Failure?) {
        var decoder = HTTPChunkedDecoder(maxBodySize: maxBodySize)
        var body: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            var buffer = ByteBuffer(bytes: bytes[offset..<min(offset + step, bytes.count)])
            offset = min(offset + step, bytes.count)
            do {
                while let event = try decoder.next(from: &buffer) {
                    switch event {
                    case .data(let part): body += part.readableBytesView
                    case .end: return (body, true, buffer.readableBytes + bytes.count - offset, nil)
                    }
                }
            } catch {
                return (body, false, 0, error)
            }
        }
        return (body, false, 0, nil)
    }

    /// NIO's reading of the same body behind a chunked POST head: the body, or `nil` when it
    /// refuses it or wants more.
    private func nioBody(_ bytes: [UInt8]) -> [UInt8]? {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder()))
        defer { _ = try? channel.finish() }
        let head = Array("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        _ = try? channel.writeInbound(ByteBuffer(bytes: head + bytes))
        var body: [UInt8] = []
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head: break
            case .body(let bytes): body += bytes.readableBytesView
            case .end: return body
            }
        }
        return nil
    }

    @Test func aBodyReadsTheSameAtEverySplitAndLeavesWhatFollows() {
        let text = "4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: x\r\n\r\nNEXT"
        let bytes = Array(text.utf8)
        for step in 1...bytes.count {
            let result = self.decode(bytes, step: step)
            #expect(result.error == nil && result.ended, "step \(step)")
            #expect(String(decoding: result.body, as: UTF8.self) == "Wikipedia in\r\n\r\nchunks.", "step \(step)")
            #expect(result.rest == 4, "step \(step): what follows the body stays unread")
        }
        #expect(
            self.nioBody(Array(text.dropLast(4).utf8)).map { String(decoding: $0, as: UTF8.self) }
                == "Wikipedia in\r\n\r\nchunks."
        )
    }

    @Test func aChunkOverTheLimitIsRefusedAtItsSizeLine() {
        // 0x65 = 101 bytes declared with a limit of 100: refused before any of its data.
        #expect(self.decode(Array("65\r\n".utf8), step: 1, maxBodySize: 100).error == .bodyTooLarge)
        #expect(self.decode(Array("64\r\n".utf8), step: 1, maxBodySize: 100).error == nil)
        // The limit counts all chunks together.
        let two = Array("32\r\n\(String(repeating: "a", count: 50))\r\n33\r\n".utf8)
        #expect(self.decode(two, step: 7, maxBodySize: 100).error == .bodyTooLarge)
        #expect(self.decode(Array("7FFFFFFF\r\n".utf8), step: 3, maxBodySize: 1_000_000).error == .bodyTooLarge)
        #expect(self.decode(Array("1000000000000000\r\n".utf8), step: 1).error == .bodyTooLarge)
    }

    @Test func longLinesAreRefusedWithoutWaitingForTheirEnd() {
        let line = Array("1;".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 16_382)
        #expect(self.decode(line + Array("\r\na\r\n0\r\n\r\n".utf8), step: 4096).ended)
        // One byte more, and no CR LF at all: refused as soon as the line passes 16 KiB.
        #expect(self.decode(line + [UInt8(ascii: "x")], step: 4096).error == .lineTooLong)
        let trailers = Array("0\r\n".utf8) + [UInt8](repeating: UInt8(ascii: "t"), count: 20_000)
        #expect(self.decode(trailers, step: 1000).error == .trailersTooLarge)
    }

    @Test(arguments: [
        "", "x\r\n", "\r\n", "3\nabc", "3\r\nabcd\r\n", "3\r\nabc\n", ";a\r\n", "3 \r\n", "3 ;a\r\n", "-3\r\n",
        "3;a\u{01}\r\n", "0\r\nBad\u{7F}\r\n\r\n", "0\r\n\n",
    ])
    func malformedBodiesAreRefusedOrWaitForMore(_ text: String) {
        let result = self.decode(Array(text.utf8), step: 1)
        #expect(!result.ended, "\(text.debugDescription)")
        if result.error == nil {
            // Not an error yet: then only because the bytes ended (as NIO also waits).
            #expect(self.nioBody(Array(text.utf8)) == nil, "\(text.debugDescription)")
        }
    }

    /// Random bodies built from valid and broken pieces: whatever is read here is what NIO
    /// reads, and nothing NIO refuses is read.
    @Test func randomBodiesAgreeWithNIO() {
        var generator = SystemRandomNumberGenerator()
        let sizes = ["0", "1", "3", "00A", "f", "F", "10", "x", "", "-1", " 3", "3 "]
        let extensions = ["", "", ";a", ";a=b", ";a=\"q\"", "; a", ";", ";\u{01}"]
        let endings = ["\r\n", "\r\n", "\r\n", "\n", "\r"]
        var read = 0
        for _ in 0..<3000 {
            var text = ""
            for _ in 0..<Int.random(in: 0...3, using: &generator) {
                let size = sizes.randomElement(using: &generator)!
                text += size + extensions.randomElement(using: &generator)! + endings.randomElement(using: &generator)!
                let count = Int(size, radix: 16).map { max(0, $0) } ?? 1
                text += String(repeating: "d", count: count) + endings.randomElement(using: &generator)!
            }
            text += "0" + extensions.randomElement(using: &generator)! + "\r\n"
            if Bool.random(using: &generator) { text += "X-Trailer: 1\r\n" }
            text += endings.randomElement(using: &generator)!
            let bytes = Array(text.utf8)
            let ours = self.decode(bytes, step: Int.random(in: 1...8, using: &generator))
            guard ours.ended, ours.rest == 0 else { continue }
            read += 1
            #expect(self.nioBody(bytes) == ours.body, "\(text.debugDescription)")
        }
        #expect(read > 100)
    }
}
