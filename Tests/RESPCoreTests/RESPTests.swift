import Foundation
import NIOCore
import RESPCore
import SocketIOCore
import TestSupport
import Testing

/// A story's wire text as bytes (U+0000–U+00FF stand for single bytes).
private func wireBytes(_ text: String) -> [UInt8] {
    text.unicodeScalars.map { UInt8($0.value) }
}

private func bytes(_ text: String) -> ByteBuffer { ByteBuffer(bytes: wireBytes(text)) }

/// A value in the fixture notation.
private func respValue(_ value: JSONValue) -> RESPValue {
    guard case .object(let object) = value, let (kind, inner) = object.entries.first.map({ ($0.key, $0.value) })
    else { return .null }
    switch kind {
    case "simple": return .simpleString(inner.stringValue!)
    case "error": return .error(inner.stringValue!)
    case "integer": return .integer(Int64(inner.intValue!))
    case "bulk": return .bulkString(bytes(inner.stringValue!))
    case "array": return .array(inner.arrayValue!.map(respValue))
    case "set": return .set(inner.arrayValue!.map(respValue))
    case "push": return .push(inner.arrayValue!.map(respValue))
    case "boolean": return .boolean(inner.boolValue!)
    case "double":
        switch inner.stringValue {
        case "inf": return .double(.infinity)
        case "-inf": return .double(-.infinity)
        default: return .double(inner.doubleValue!)
        }
    case "big": return .bigNumber(inner.stringValue!)
    case "bulkError": return .bulkError(inner.stringValue!)
    case "verbatim":
        return .verbatimString(
            format: inner.arrayValue![0].stringValue!,
            text: bytes(inner.arrayValue![1].stringValue!)
        )
    case "map":
        return .map(inner.arrayValue!.map { RESPPair(respValue($0.arrayValue![0]), respValue($0.arrayValue![1])) })
    default:
        Issue.record("unknown notation \(kind)")
        return .null
    }
}

private func load() throws -> (stories: [JSONValue], errors: [JSONValue]) {
    let file = try JSONParser.parse(
        Array(Data(contentsOf: Fixtures.directory.appendingPathComponent("resp/values.json")))
    )
    return (file["stories"]!.arrayValue!, file["errors"]!.arrayValue!)
}

@Suite("RESP")
struct RESPTests {
    /// Feeds `chunks` and collects every value, or the first error.
    private func decode(_ chunks: [ByteBuffer], limits: RESPDecoder.Limits = .init()) -> ([RESPValue], RESPError?) {
        var decoder = RESPDecoder(limits: limits)
        var values: [RESPValue] = []
        do {
            for chunk in chunks {
                decoder.append(chunk)
                while let value = try decoder.next() { values.append(value) }
            }
        } catch {
            return (values, error)
        }
        return (values, nil)
    }

    @Test func everyStoryDecodesTheSameWhateverTheSplitsAndRoundTrips() throws {
        let (stories, _) = try load()
        for story in stories {
            let name = story["name"]!.stringValue!
            let wire = wireBytes(story["wire"]!.stringValue!)
            let expected = respValue(story["value"]!)
            for plan in ChunkPlans.all(wire) {
                let (values, error) = self.decode(plan)
                #expect(error == nil && values == [expected], "\(name): \(values) \(String(describing: error))")
            }
            // The encoder writes RESP3 forms: re-reading them gives the same value (attributes,
            // which it never writes, and RESP2 nulls, written as `_`, aside).
            var encoded = ByteBuffer()
            RESPEncoder.encode(expected, into: &encoded)
            #expect(self.decode([encoded]).0 == [expected], "\(name)")
        }
    }

    @Test func twoRepliesInOneReadComeOutInOrder() throws {
        let (values, error) = self.decode([bytes("+OK\r\n:1\r\n*1\r\n$1\r\na\r\n$1\r\n")])
        #expect(error == nil && values == [.simpleString("OK"), .integer(1), .array([.bulkString(bytes("a"))])])
    }

    @Test func invalidInputIsRefusedWithItsReasonAtEverySplit() throws {
        let (_, errors) = try load()
        for story in errors {
            let name = story["name"]!.stringValue!
            let wire = wireBytes(story["wire"]!.stringValue!)
            for plan in ChunkPlans.all(wire).prefix(4) {
                let (_, error) = self.decode(plan)
                #expect(error?.reason.rawValue == story["error"]?.stringValue, "\(name)")
            }
        }
    }

    @Test func limitsHoldBeforeTheBytesTheyBound() {
        var limits = RESPDecoder.Limits()
        limits.maxBulkLength = 10
        limits.maxElements = 3
        // Refused from the header alone: the bytes announced never need to arrive.
        #expect(self.decode([bytes("$11\r\n")], limits: limits).1?.reason == .bulkTooLong)
        #expect(self.decode([bytes("$10\r\n0123456789\r\n")], limits: limits).1 == nil)
        #expect(self.decode([bytes("*4\r\n")], limits: limits).1?.reason == .tooManyElements)
        // A failed decoder stays failed.
        var decoder = RESPDecoder(limits: limits)
        decoder.append(bytes("?\r\n"))
        #expect(throws: RESPError.self) { try decoder.next() }
        decoder.append(bytes("+OK\r\n"))
        #expect(throws: RESPError.self) { try decoder.next() }
    }

    @Test func commandsAreArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RESPEncoder.command(["PUBLISH", "socket.io#/#", "héllo"], into: &buffer)
        #expect(String(buffer: buffer) == "*3\r\n$7\r\nPUBLISH\r\n$12\r\nsocket.io#/#\r\n$6\r\nhéllo\r\n")
    }

    @Test func aLargeArrayArrivingInSmallPiecesCostsLinearTime() {
        // 100 000 elements, fed 7 bytes at a time: the decoder resumes, it does not re-read.
        var wire = "*100000\r\n"
        for i in 0..<100_000 { wire += ":\(i)\r\n" }
        let all = wireBytes(wire)
        let chunks = stride(from: 0, to: all.count, by: 7).map { ByteBuffer(bytes: all[$0..<min($0 + 7, all.count)]) }
        let started = ContinuousClock.now
        let (values, error) = self.decode(chunks)
        #expect(error == nil && values.first?.elements?.count == 100_000)
        #expect(ContinuousClock.now - started < .seconds(20))
    }
}
