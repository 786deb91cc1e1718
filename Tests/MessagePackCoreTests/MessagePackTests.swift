import Foundation
import MessagePackCore
import NIOCore
import SocketIOCore
import TestSupport
import Testing

/// A value in the fixtures' notation (see `Fixtures/msgpack/values.json` and
/// `shared/fixtures/redis-adapter/README.md`) turned into a MessagePack value. Plain numbers
/// are integers here; floats come wrapped (`$float64`, `$float32`).
func messagePackValue(fixture value: JSONValue) -> MessagePackValue {
    switch value {
    case .null: return .nil
    case .bool(let flag): return .bool(flag)
    case .number(let number): return .int(Int64(number.text)!)
    case .string(let text): return .string(text)
    case .binary: return .nil
    case .array(let items): return .array(items.map(messagePackValue(fixture:)))
    case .object(let object):
        if let text = object["$uint"]?.stringValue { return .uint(UInt64(text)!) }
        if let float = object["$float64"] { return .double(fixtureDouble(float)) }
        if let float = object["$float32"] { return .float(Float(fixtureDouble(float))) }
        if let bin = object["$bin"]?.stringValue { return .binary(ByteBuffer(bytes: Data(base64Encoded: bin)!)) }
        if let type = object["$ext"]?.intValue {
            let data = Data(base64Encoded: object["$data"]!.stringValue!)!
            return .ext(type: Int8(type), data: ByteBuffer(bytes: data))
        }
        if let pairs = object["$map"]?.arrayValue {
            return .map(
                pairs.map {
                    MessagePackPair(messagePackValue(fixture: $0[0]!), messagePackValue(fixture: $0.arrayValue![1]))
                }
            )
        }
        Issue.record("unknown fixture notation \(value.jsonText)")
        return .nil
    }
}

private func fixtureDouble(_ value: JSONValue) -> Double {
    switch value {
    case .string("NaN"): return .nan
    case .string("Infinity"): return .infinity
    case .string("-Infinity"): return -.infinity
    case .string("-0"): return -0.0
    default: return value.doubleValue ?? .nan
    }
}

/// Whether `value` is what the Redis captures' `decoded` notation says: numbers compared as
/// numbers (the captures do not tell integers from floats), maps as objects in wire order.
func matches(_ value: MessagePackValue, _ expected: JSONValue) -> Bool {
    switch (value, expected) {
    case (.nil, .null): return true
    case (.bool(let flag), .bool(let other)): return flag == other
    case (.int(let number), .number(let other)): return Double(number) == other.doubleValue
    case (.uint(let number), .number(let other)): return Double(number) == other.doubleValue
    case (.double(let number), .number(let other)): return number == other.doubleValue
    case (.double(let number), .object(let object)):
        guard let float = object["$float64"] else { return false }
        let expected = fixtureDouble(float)
        return number.isNaN ? expected.isNaN : number == expected && number.sign == expected.sign
    case (.string(let text), .string(let other)): return text == other
    case (.binary(let bytes), .object(let object)):
        return object["$bin"]?.stringValue.flatMap { Data(base64Encoded: $0) } == Data(bytes.readableBytesView)
    case (.ext(let type, let data), .object(let object)):
        return object["$ext"]?.intValue == Int(type)
            && object["$data"]?.stringValue.flatMap { Data(base64Encoded: $0) } == Data(data.readableBytesView)
    case (.array(let items), .array(let others)):
        return items.count == others.count && zip(items, others).allSatisfy { matches($0, $1) }
    case (.map(let pairs), .object(let object)):
        return pairs.count == object.count
            && zip(pairs, object.entries).allSatisfy { pair, entry in
                pair.key == .string(entry.key) && matches(pair.value, entry.value)
            }
    default:
        return false
    }
}

extension JSONValue {
    fileprivate subscript(index: Int) -> JSONValue? { self.arrayValue?[index] }
}

private func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

private func loadJSON(_ url: URL) throws -> JSONValue {
    try JSONParser.parse(Array(Data(contentsOf: url)))
}

private func loadStories() throws -> (stories: [JSONValue], errors: [JSONValue]) {
    let file = try loadJSON(Fixtures.directory.appendingPathComponent("msgpack/values.json"))
    return (file["stories"]!.arrayValue!, file["errors"]!.arrayValue!)
}

@Suite("MessagePack")
struct MessagePackTests {
    @Test func everyStoryDecodesEncodesAndRefusesEveryPrefix() throws {
        let (stories, _) = try loadStories()
        #expect(stories.count > 40)
        for story in stories {
            let name = story["name"]!.stringValue!
            let bytes = hexBytes(story["hex"]!.stringValue!)
            let expected = messagePackValue(fixture: story["value"]!)
            let decoded = try MessagePackDecoder.decode(bytes)
            if case .double(let number) = expected, number.isNaN {
                guard case .double(let got) = decoded, got.isNaN else {
                    Issue.record("\(name): \(decoded)")
                    continue
                }
            } else {
                #expect(decoded == expected, "\(name)")
            }
            if story["canonical"] == true {
                #expect(Array(MessagePackEncoder.encode(expected).readableBytesView) == bytes, "\(name)")
            }
            // Every proper prefix is a truncation, never a trap.
            for end in 0..<bytes.count {
                #expect(throws: MessagePackError.self, "\(name) cut at \(end)") {
                    try MessagePackDecoder.decode(Array(bytes[..<end]))
                }
            }
        }
    }

    @Test func invalidInputIsRefusedWithItsReason() throws {
        let (_, errors) = try loadStories()
        for story in errors {
            let name = story["name"]!.stringValue!
            do {
                _ = try MessagePackDecoder.decode(hexBytes(story["hex"]!.stringValue!))
                Issue.record("\(name): decoded")
            } catch {
                #expect(error.reason.rawValue == story["error"]?.stringValue, "\(name)")
            }
        }
    }

    @Test func timestampsAreRead() throws {
        // 64-bit form: nanoseconds in the top 30 bits, seconds in the low 34.
        let word = UInt64(123_456_789) << 34 | 1_700_000_000
        var data = ByteBuffer()
        data.writeInteger(word)
        let (seconds, nanoseconds) = try #require(MessagePackValue.ext(type: -1, data: data).timestamp)
        #expect(seconds == 1_700_000_000 && nanoseconds == 123_456_789)
        #expect(MessagePackValue.ext(type: -1, data: ByteBuffer(bytes: [0, 0, 0, 1])).timestamp! == (1, 0))
        #expect(MessagePackValue.ext(type: 5, data: ByteBuffer(bytes: [0, 0, 0, 1])).timestamp == nil)
    }

    /// Every msgpack payload two Node nodes sent through Redis (classic and sharded adapters,
    /// notepack.io 3.0.1) decodes to what the capture says, and encodes back to the same bytes
    /// unless notepack wrote a number in a form that is not its smallest (it writes an integral
    /// float of 2⁶⁴ or more as the integer 0).
    @Test func nodesCapturedPayloadsDecodeAndReencodeExactly() throws {
        let root = URL(fileURLWithPath: sharedDirectory()).appendingPathComponent("fixtures/redis-adapter")
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }
            .filter { $0.pathExtension == "json" && !$0.path.contains("/streams/") }
        var checked = 0
        for file in files {
            let scenario = try loadJSON(file)
            for message in scenario["messages"]?.arrayValue ?? [] where message["encoding"] == "msgpack" {
                let bytes = [UInt8](Data(base64Encoded: message["payload_base64"]!.stringValue!)!)
                let decoded = try MessagePackDecoder.decode(bytes)
                #expect(
                    matches(decoded, message["decoded"]!),
                    "\(file.lastPathComponent) #\(message["seq"]?.jsonText ?? "?")"
                )
                let reencoded = Array(MessagePackEncoder.encode(decoded).readableBytesView)
                if reencoded != bytes {
                    // Only the known notepack quirk may differ: `cf 00…00` (1e300 written as 0).
                    let quirk: [UInt8] = [0xCF, 0, 0, 0, 0, 0, 0, 0, 0]
                    #expect(bytes.count == reencoded.count + 8 && contains(bytes, quirk), "\(file.lastPathComponent)")
                }
                checked += 1
            }
        }
        #expect(checked >= 40, "only \(checked) msgpack payloads found under \(root.path)")
    }
}

private func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
    guard bytes.count >= needle.count else { return false }
    return (0...(bytes.count - needle.count)).contains { Array(bytes[$0..<$0 + needle.count]) == needle }
}

/// `../shared` beside the repository, or `SHARED_DIR`.
func sharedDirectory() -> String {
    if let shared = ProcessInfo.processInfo.environment["SHARED_DIR"] { return shared }
    return Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared")
        .path
}
