import Foundation
import NIOCore
import NIOEmbedded
import NIOWebSocket
import PerMessageDeflate
import TestSupport
import Testing

struct Example: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    var payload: String?
    var fragments: [String]?
    var text: String
    var previous: String?
    var testDescription: String { self.name }
}

struct Examples: Decodable {
    var examples: [Example]
    var compression: [Example]
}

struct NegotiationCase: Decodable, Sendable, CustomTestStringConvertible {
    var offer: [String]
    var response: String?
    var testDescription: String { self.offer.joined(separator: " | ") }
}

struct NegotiationTable: Decodable {
    var cases: [NegotiationCase]
}

func hex(_ s: String) -> [UInt8] {
    stride(from: 0, to: s.count, by: 2).map {
        let start = s.index(s.startIndex, offsetBy: $0)
        return UInt8(s[start..<s.index(start, offsetBy: 2)], radix: 16)!
    }
}

let examples = (try? Fixtures.load(Examples.self, "deflate/rfc7692-examples.json"))
let negotiationCases = (try? Fixtures.load(NegotiationTable.self, "deflate/negotiation.json").cases) ?? []

@Suite("RFC 7692 examples and negotiation")
struct RFC7692Tests {
    @Test func fixturesLoaded() {
        #expect(examples?.examples.count == 5)
        #expect(negotiationCases.count > 15)
    }

    @Test(arguments: examples?.examples ?? [])
    func inflates(_ example: Example) throws {
        let inflater = try ZlibStream(inflateWindowBits: 15)
        var out = ByteBuffer()
        var produced = 0
        for piece in example.fragments ?? [example.payload!] {
            produced += try inflater.inflate(
                ByteBuffer(bytes: hex(piece)).readableBytesView,
                into: &out,
                alreadyProduced: produced,
                limit: 1000
            )
        }
        _ = try inflater.inflate(
            ByteBuffer(bytes: [0, 0, 0xFF, 0xFF]).readableBytesView,
            into: &out,
            alreadyProduced: produced,
            limit: 1000
        )
        #expect(String(buffer: out) == example.text)
    }

    @Test(arguments: examples?.compression ?? [])
    func compressesLikeTheRFC(_ example: Example) throws {
        let deflater = try ZlibStream(deflateWindowBits: 15, memLevel: 8, level: 6)
        var out = ByteBuffer()
        if let previous = example.previous {
            try deflater.deflateSync(ByteBuffer(string: previous).readableBytesView, into: &out)
            out.clear()
        }
        try deflater.deflateSync(ByteBuffer(string: example.text).readableBytesView, into: &out)
        let bytes = Array(out.readableBytesView)
        #expect(bytes.suffix(4) == [0, 0, 0xFF, 0xFF])
        #expect(Array(bytes.dropLast(4)) == hex(example.payload!))
    }

    @Test(arguments: negotiationCases)
    func negotiates(_ c: NegotiationCase) {
        let result = PerMessageDeflateNegotiation.negotiate(
            headerValues: c.offer,
            configuration: PerMessageDeflateConfiguration()
        )
        #expect(result?.response == c.response)
    }

    @Test func contextTakeoverConfigurationAsksForNothing() {
        var configuration = PerMessageDeflateConfiguration()
        configuration.contextTakeover = true
        let result = PerMessageDeflateNegotiation.negotiate(
            headerValues: ["permessage-deflate"],
            configuration: configuration
        )
        #expect(result?.response == "permessage-deflate")
        #expect(result?.parameters.serverNoContextTakeover == false)
        configuration.enabled = false
        #expect(
            PerMessageDeflateNegotiation.negotiate(headerValues: ["permessage-deflate"], configuration: configuration)
                == nil
        )
    }

    @Test func parsesCommasAndQuotes() throws {
        let parsed = try #require(PerMessageDeflateNegotiation.parse([#"a; x="1;2,3", b"#, "c"]))
        #expect(parsed.map(\.name) == ["a", "b", "c"])
        #expect(parsed[0].parameters == [.init(name: "x", value: "1;2,3")])
    }

    @Test func trimsOptionalWhitespaceAroundItemsAndParameters() throws {
        let parsed = try #require(
            PerMessageDeflateNegotiation.parse([
                " \tpermessage-deflate ;\t client_max_window_bits\t; x = \"a b\" ,é ; y=\"\""
            ])
        )
        #expect(parsed.map(\.name) == ["permessage-deflate", "é"])
        #expect(
            parsed[0].parameters == [.init(name: "client_max_window_bits", value: nil), .init(name: "x", value: "a b")]
        )
        #expect(parsed[1].parameters == [.init(name: "y", value: "")])
        #expect(PerMessageDeflateNegotiation.parse([#"a; x="1"#]) == nil)
        #expect(PerMessageDeflateNegotiation.parse(["a; ;b"]) == nil)
    }

    /// The byte-wise splitting and trimming agree with a character-by-character reading of the same
    /// grammar (quoted strings, backslash escapes inside them, spaces and tabs around items) on
    /// every string of up to four pieces drawn from the characters that matter.
    @Test func parsingAgreesWithACharacterWiseReading() {
        let pieces = [" ", "\t", ",", ";", "=", "\"", "\\", "a", "é", "b c"]
        // Each extension as its name followed by its parameters' names and values.
        typealias Flat = [[String?]]
        func flat(_ extensions: [PerMessageDeflateNegotiation.Extension]?) -> Flat? {
            extensions?.map { [$0.name] + $0.parameters.flatMap { [$0.name, $0.value] } }
        }
        func reference(_ values: [String]) -> Flat? {
            func split(_ s: String, _ separator: Character) -> [String]? {
                var parts: [String] = []
                var current = ""
                var quoted = false
                var escaped = false
                for c in s {
                    if escaped {
                        current.append(c)
                        escaped = false
                    } else if c == "\\" && quoted {
                        escaped = true
                    } else if c == "\"" {
                        quoted.toggle()
                        current.append(c)
                    } else if c == separator && !quoted {
                        parts.append(current)
                        current = ""
                    } else {
                        current.append(c)
                    }
                }
                return quoted ? nil : parts + [current]
            }
            func trim(_ s: some StringProtocol) -> String {
                var characters = Array(s)
                while let first = characters.first, first == " " || first == "\t" { characters.removeFirst() }
                while let last = characters.last, last == " " || last == "\t" { characters.removeLast() }
                return String(characters)
            }
            var extensions: Flat = []
            for value in values {
                guard let items = split(value, ",") else { return nil }
                for item in items {
                    guard let parts = split(item, ";") else { return nil }
                    let name = trim(parts[0])
                    if name.isEmpty { continue }
                    var parameters: [String?] = []
                    for part in parts.dropFirst() {
                        let piece = trim(part)
                        if piece.isEmpty { return nil }
                        if let eq = piece.firstIndex(of: "=") {
                            var raw = trim(piece[piece.index(after: eq)...])
                            if raw.hasPrefix("\"") {
                                guard raw.count >= 2, raw.hasSuffix("\"") else { return nil }
                                raw = String(raw.dropFirst().dropLast())
                            }
                            parameters += [trim(piece[..<eq]), raw]
                        } else {
                            parameters += [piece, nil]
                        }
                    }
                    extensions.append([name] + parameters)
                }
            }
            return extensions
        }
        var checked = 0
        func visit(_ prefix: String, depth: Int) {
            let value = "x" + prefix
            #expect(
                flat(PerMessageDeflateNegotiation.parse([value])) == reference([value]),
                "\(value.debugDescription)"
            )
            checked += 1
            guard depth < 4 else { return }
            for piece in pieces { visit(prefix + piece, depth: depth + 1) }
        }
        visit("", depth: 0)
        #expect(checked == 11_111)
    }
}

@Suite("zlib streams")
struct ZlibStreamTests {
    @Test func endIsIdempotentAndResetAfterEndIsHarmless() throws {
        let stream = try ZlibStream(deflateWindowBits: 15, memLevel: 8, level: 6)
        stream.end()
        stream.end()
        stream.reset()
        let inflater = try ZlibStream(inflateWindowBits: 15)
        inflater.end()
        inflater.end()
    }

    @Test func roundTripsLargeAndRandomData() throws {
        let deflater = try ZlibStream(deflateWindowBits: 15, memLevel: 8, level: 6)
        let inflater = try ZlibStream(inflateWindowBits: 15)
        var rng = SystemRandomNumberGenerator()
        for size in [0, 1, 100, 70_000, 1 << 20] {
            let input = (0..<size).map { i in i % 7 == 0 ? UInt8.random(in: 0...255, using: &rng) : UInt8(i % 13) }
            var compressed = ByteBuffer()
            try deflater.deflateSync(ByteBuffer(bytes: input).readableBytesView, into: &compressed)
            var out = ByteBuffer()
            _ = try inflater.inflate(compressed.readableBytesView, into: &out, alreadyProduced: 0, limit: 2 << 20)
            #expect(Array(out.readableBytesView) == input)
            deflater.reset()
            inflater.reset()
        }
    }

    @Test func inflateRefusesMoreThanTheLimit() throws {
        // A decompression bomb: 10 MB of zeros compress to about 10 KB.
        let deflater = try ZlibStream(deflateWindowBits: 15, memLevel: 8, level: 9)
        var bomb = ByteBuffer()
        try deflater.deflateSync(ByteBuffer(repeating: 0, count: 10_000_000).readableBytesView, into: &bomb)
        #expect(bomb.readableBytes < 20_000)
        let inflater = try ZlibStream(inflateWindowBits: 15)
        var out = ByteBuffer()
        #expect(throws: PerMessageDeflateError.messageTooLarge(limit: 1_000_000)) {
            _ = try inflater.inflate(bomb.readableBytesView, into: &out, alreadyProduced: 0, limit: 1_000_000)
        }
        #expect(out.readableBytes < 3_000_000, "inflation stopped soon after the limit")
    }

    @Test func inflateRefusesGarbage() throws {
        let inflater = try ZlibStream(inflateWindowBits: 15)
        var out = ByteBuffer()
        #expect(throws: PerMessageDeflateError.invalidData) {
            _ = try inflater.inflate(
                ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x00]).readableBytesView,
                into: &out,
                alreadyProduced: 0,
                limit: 1000
            )
        }
    }

    @Test func gzipForHTTP() throws {
        let body = ByteBuffer(string: String(repeating: "payload ", count: 500))
        let gz = try #require(HTTPBodyCompressor.compress(body, coding: .gzip))
        #expect(Array(gz.readableBytesView.prefix(2)) == [0x1F, 0x8B])
        #expect(gz.readableBytes < 200)
        #expect(HTTPBodyCompressor.preferredCoding(acceptEncoding: ["deflate, gzip;q=1.0"]) == .gzip)
        #expect(HTTPBodyCompressor.preferredCoding(acceptEncoding: ["gzip;q=0, deflate"]) == .deflate)
        #expect(HTTPBodyCompressor.preferredCoding(acceptEncoding: ["br"]) == nil)
    }
}

@Suite("permessage-deflate handler")
struct HandlerTests {
    func channel(threshold: Int = 16, maxSize: Int = 1_000_000) throws -> EmbeddedChannel {
        var configuration = PerMessageDeflateConfiguration()
        configuration.threshold = threshold
        configuration.maxDecompressedSize = maxSize
        let parameters = PerMessageDeflateParameters(
            serverNoContextTakeover: true,
            clientNoContextTakeover: true,
            serverMaxWindowBits: 15
        )
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            PerMessageDeflateHandler(parameters: parameters, configuration: configuration)
        )
        return channel
    }

    func masked(_ bytes: [UInt8], opcode: WebSocketOpcode, fin: Bool = true, rsv1: Bool) -> WebSocketFrame {
        let key: WebSocketMaskingKey = [1, 2, 3, 4]
        var data = ByteBuffer(bytes: bytes)
        data.webSocketMask(key)
        return WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, maskKey: key, data: data)
    }

    @Test func inflatesInboundMessagesAndFragments() throws {
        let channel = try self.channel()
        try channel.writeInbound(self.masked(hex("f248cdc9c90700"), opcode: .text, rsv1: true))
        let whole = try #require(try channel.readInbound(as: WebSocketFrame.self))
        #expect(String(buffer: whole.data) == "Hello" && !whole.rsv1 && whole.maskKey == nil)
        try channel.writeInbound(self.masked(hex("f248cd"), opcode: .text, fin: false, rsv1: true))
        try channel.writeInbound(self.masked(hex("c9c90700"), opcode: .continuation, rsv1: false))
        let first = try #require(try channel.readInbound(as: WebSocketFrame.self))
        let second = try #require(try channel.readInbound(as: WebSocketFrame.self))
        #expect(String(buffer: first.data) + String(buffer: second.data) == "Hello")
        #expect(second.opcode == .continuation && second.fin)
        // Uncompressed frames pass through, unmasked.
        try channel.writeInbound(self.masked(Array("plain".utf8), opcode: .text, rsv1: false))
        #expect(String(buffer: try #require(try channel.readInbound(as: WebSocketFrame.self)).data) == "plain")
    }

    @Test func compressesOutboundAboveTheThresholdUnlessSkipped() throws {
        let channel = try self.channel()
        let text = String(repeating: "compress me ", count: 50)
        try channel.writeOutbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)))
        let compressed = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(compressed.rsv1 && compressed.data.readableBytes < text.utf8.count / 4)
        let inflater = try ZlibStream(inflateWindowBits: 15)
        var out = ByteBuffer()
        var payload = compressed.data
        payload.writeBytes([0, 0, 0xFF, 0xFF])
        _ = try inflater.inflate(payload.readableBytesView, into: &out, alreadyProduced: 0, limit: 1 << 20)
        #expect(String(buffer: out) == text)
        // Small messages and skipped ones go out as they are.
        try channel.writeOutbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: "tiny")))
        #expect(try #require(try channel.readOutbound(as: WebSocketFrame.self)).rsv1 == false)
        channel.pipeline.triggerUserOutboundEvent(PerMessageDeflateHandler.SkipCompression(), promise: nil)
        try channel.writeOutbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)))
        #expect(try #require(try channel.readOutbound(as: WebSocketFrame.self)).rsv1 == false)
        try channel.writeOutbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)))
        #expect(try #require(try channel.readOutbound(as: WebSocketFrame.self)).rsv1 == true, "only the next frame")
    }

    @Test func aBroadcastIsCompressedOncePerEventLoop() throws {
        let loop = EmbeddedEventLoop()
        let parameters = PerMessageDeflateParameters(
            serverNoContextTakeover: true,
            clientNoContextTakeover: true,
            serverMaxWindowBits: 15
        )
        let channels = try (0..<5).map { _ -> EmbeddedChannel in
            let channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandler(
                PerMessageDeflateHandler(parameters: parameters, configuration: PerMessageDeflateConfiguration())
            )
            return channel
        }
        let streams = LoopStreams.forLoop(loop, configuration: PerMessageDeflateConfiguration())
        let before = streams.compressions
        let shared = ByteBuffer(string: String(repeating: "the same broadcast ", count: 200))
        var outputs: [[UInt8]] = []
        for channel in channels {
            try channel.writeOutbound(WebSocketFrame(fin: true, opcode: .text, data: shared))
            let frame = try #require(try channel.readOutbound(as: WebSocketFrame.self))
            #expect(frame.rsv1)
            outputs.append(Array(frame.data.readableBytesView))
        }
        #expect(streams.compressions - before == 1, "one compression for five receivers")
        #expect(Set(outputs).count == 1)
        // A different buffer with the same content is compressed again (identity, not content).
        try channels[0].writeOutbound(
            WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: String(buffer: shared)))
        )
        _ = try channels[0].readOutbound(as: WebSocketFrame.self)
        #expect(streams.compressions - before == 2)
    }

    @Test func bombsAndUnmaskedFramesAreErrors() throws {
        let channel = try self.channel(maxSize: 100_000)
        let deflater = try ZlibStream(deflateWindowBits: 15, memLevel: 8, level: 9)
        var bomb = ByteBuffer()
        try deflater.deflateSync(ByteBuffer(repeating: 0, count: 5_000_000).readableBytesView, into: &bomb)
        bomb.moveWriterIndex(to: bomb.writerIndex - 4)
        #expect(throws: PerMessageDeflateError.messageTooLarge(limit: 100_000)) {
            try channel.writeInbound(self.masked(Array(bomb.readableBytesView), opcode: .binary, rsv1: true))
        }
        #expect(throws: PerMessageDeflateError.protocolViolation) {
            try channel.writeInbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: "x")))
        }
    }
}
