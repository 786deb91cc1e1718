import EngineIOCore
import Foundation
import NIOCore
import TestSupport
import Testing

struct PacketSpec: Decodable {
    var type: String
    var text: String?
    var base64: String?

    var packet: EngineIOPacket {
        switch self.type {
        case "open": return .open(self.text ?? "")
        case "close": return .close
        case "ping": return .ping(self.text ?? "")
        case "pong": return .pong(self.text ?? "")
        case "message": return .message(self.text ?? "")
        case "binary": return .binaryMessage(ByteBuffer(bytes: Data(base64Encoded: self.base64 ?? "")!))
        case "upgrade": return .upgrade
        case "noop": return .noop
        default: fatalError("unknown packet type \(self.type) in fixture")
        }
    }
}

struct Story: Decodable, CustomTestStringConvertible, Sendable {
    var name: String
    var wire: String?
    var wireBase64: String?
    var packetSpecs: [PacketSpecBox]?
    var error: String?
    var maxPayload: Int?

    enum CodingKeys: String, CodingKey {
        case name, wire, wireBase64, error, maxPayload
        case packetSpecs = "packets"
    }

    var testDescription: String { self.name }

    var bytes: [UInt8] {
        if let wire { return Array(wire.utf8) }
        return Array(Data(base64Encoded: self.wireBase64!)!)
    }

    var packets: [EngineIOPacket]? { self.packetSpecs?.map(\.spec.packet) }
}

/// `PacketSpec` wrapped so that `Story` stays `Sendable` for `@Test(arguments:)`.
struct PacketSpecBox: Decodable, Sendable {
    var type: String
    var text: String?
    var base64: String?
    var spec: PacketSpec { PacketSpec(type: self.type, text: self.text, base64: self.base64) }
}

struct StoryFile: Decodable {
    var description: String
    var stories: [Story]
}

let packetStories = (try? Fixtures.load(StoryFile.self, "engineio/packets.json").stories) ?? []
let payloadStories = (try? Fixtures.load(StoryFile.self, "engineio/payloads.json").stories) ?? []

@Suite("Engine.IO codec stories")
struct CodecStoryTests {
    @Test func fixturesLoaded() {
        #expect(packetStories.count > 10)
        #expect(payloadStories.count > 10)
    }

    @Test(arguments: packetStories)
    func packet(_ story: Story) throws {
        let bytes = ByteBuffer(bytes: story.bytes)
        if let error = story.error {
            #expect(throws: EngineIOCodecError.self) { try EngineIOPacket.decodeText(bytes.readableBytesView) }
            do {
                _ = try EngineIOPacket.decodeText(bytes.readableBytesView)
            } catch {
                #expect(error.name == story.error)
            }
            _ = error
            return
        }
        let expected = try #require(story.packets?.first)
        let decoded = try EngineIOPacket.decodeText(bytes.readableBytesView)
        #expect(decoded == expected)
        // Encoding gives back the same bytes.
        var out = ByteBuffer()
        expected.writeText(into: &out)
        #expect(Array(out.readableBytesView) == story.bytes)
    }

    @Test(arguments: payloadStories)
    func payloadDripFed(_ story: Story) throws {
        let limit = story.maxPayload ?? 1_000_000
        for chunks in ChunkPlans.all(story.bytes) {
            var decoder = EngineIOPayloadDecoder(maxPayload: limit)
            var packets: [EngineIOPacket] = []
            var failure: EngineIOCodecError?
            do {
                for chunk in chunks {
                    try decoder.append(chunk)
                    while let packet = try decoder.nextPacket() { packets.append(packet) }
                }
                packets.append(try decoder.finish())
            } catch {
                failure = error
            }
            if let expectedError = story.error {
                #expect(failure?.name == expectedError, "chunks: \(chunks.map(\.readableBytes))")
            } else {
                #expect(failure == nil, "chunks: \(chunks.map(\.readableBytes))")
                #expect(packets == story.packets, "chunks: \(chunks.map(\.readableBytes))")
            }
        }
    }

    @Test(arguments: payloadStories.filter { $0.error == nil })
    func payloadRoundTrip(_ story: Story) throws {
        var out = ByteBuffer()
        EngineIOPayloadEncoder.encode(try #require(story.packets), into: &out)
        #expect(Array(out.readableBytesView) == story.bytes)
        #expect(try EngineIOPayloadDecoder.decode(out) == story.packets)
    }
}

@Suite("Base64")
struct Base64Tests {
    @Test func roundTripsEveryLength() throws {
        var rng = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var out = ByteBuffer()
            Base64.encode(bytes, into: &out)
            #expect(String(buffer: out) == Data(bytes).base64EncodedString())
            #expect(bytes.withUnsafeBytes { Base64.string($0) } == Data(bytes).base64EncodedString())
            let decoded = try #require(Base64.decode(out.readableBytesView))
            #expect(Array(decoded.readableBytesView) == bytes)
        }
    }

    @Test(arguments: ["A", "A===", "AB=C", "A*==", "QUJD\u{0}"])
    func rejectsMalformed(_ text: String) {
        #expect(Base64.decode(Array(text.utf8)) == nil)
    }

    @Test func acceptsUnpadded() throws {
        let decoded = try #require(Base64.decode(Array("AQI".utf8)))
        #expect(Array(decoded.readableBytesView) == [1, 2])
    }
}
