import Foundation
import MessagePackCore
import NIOCore
import SocketIOCore
import TestSupport
import Testing

@Suite("Socket.IO values and MessagePack")
struct JSONValueMessagePackTests {
    @Test(arguments: [
        ("0", MessagePackValue.int(0)), ("-0", .int(0)), ("1.0", .int(1)), ("1e3", .int(1000)), ("-33", .int(-33)),
        ("4294967296", .int(4_294_967_296)), ("18446744073709551615", .uint(UInt64.max)), ("0.5", .double(0.5)),
        ("-0.25", .double(-0.25)), ("1e300", .double(1e300)), ("9223372036854775807", .int(Int64.max)),
    ])
    func numbersAreWrittenAsNotepackWritesJavaScriptNumbers(_ text: String, _ expected: MessagePackValue) throws {
        #expect(try JSONParser.parse(text).messagePackValue == expected)
    }

    @Test func valuesReadFromMessagePackAreWhatAClientWouldReceive() throws {
        let map = MessagePackValue.map([
            MessagePackPair("nan", .double(.nan)), MessagePackPair("inf", .double(.infinity)),
            MessagePackPair("f32", .float(0.5)), MessagePackPair(.int(42), "answer"),
            MessagePackPair("big", .uint(UInt64.max)), MessagePackPair("bin", .binary(ByteBuffer(bytes: [1, 2]))),
            MessagePackPair("when", .ext(type: -1, data: ByteBuffer(bytes: [0x65, 0x53, 0xF1, 0x00]))),
            MessagePackPair("other", .ext(type: 3, data: ByteBuffer(bytes: [1]))),
        ])
        let value = JSONValue(messagePack: map)
        #expect(value["nan"] == .null && value["inf"] == .null && value["f32"] == 0.5 && value["42"] == "answer")
        #expect(value["big"]?.jsonText == "18446744073709551615")
        #expect(value["bin"] == .binary(ByteBuffer(bytes: [1, 2])))
        // 0x6553F100 = 1700000000 s: what `JSON.stringify(new Date(1700000000000))` gives.
        #expect(value["when"] == "2023-11-14T22:13:20.000Z")
        #expect(value["other"] == .null)
    }

    @Test(arguments: [
        (Int64(0), UInt32(0), "1970-01-01T00:00:00.000Z"), (-1, 999_999_999, "1969-12-31T23:59:59.999Z"),
        (951_782_400, 5_000_000, "2000-02-29T00:00:00.005Z"), (253_402_300_799, 0, "9999-12-31T23:59:59.000Z"),
    ])
    func timestampsBecomeDateTexts(_ seconds: Int64, _ nanoseconds: UInt32, _ text: String) {
        var data = ByteBuffer()
        data.writeInteger(nanoseconds)
        data.writeInteger(seconds)
        #expect(JSONValue(messagePack: .ext(type: -1, data: data)) == .string(text))
    }

    /// Every msgpack payload Node's adapters sent, read as Socket.IO values and written back,
    /// gives Node's bytes: the value model carries what crosses a cluster (apart from notepack's
    /// loss of 1e300, non-finite floats, and dates, which arrive as what clients would see).
    @Test func nodesPayloadsSurviveTheValueModel() throws {
        let root = URL(fileURLWithPath: sharedDirectory()).appendingPathComponent("fixtures/redis-adapter")
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }
            .filter { $0.pathExtension == "json" && !$0.path.contains("/streams/") }
        var exact = 0
        var lossy: [String] = []
        for file in files {
            let scenario = try JSONParser.parse(Array(Data(contentsOf: file)))
            for message in scenario["messages"]?.arrayValue ?? [] where message["encoding"] == "msgpack" {
                let bytes = [UInt8](Data(base64Encoded: message["payload_base64"]!.stringValue!)!)
                let value = JSONValue(messagePack: try MessagePackDecoder.decode(bytes))
                if Array(MessagePackEncoder.encode(value.messagePackValue).readableBytesView) == bytes {
                    exact += 1
                } else {
                    lossy.append(file.lastPathComponent)
                }
            }
        }
        #expect(exact >= 30)
        // Only the scenarios that send NaN, Infinity, 1e300 or Dates differ.
        #expect(
            Set(lossy).isSubset(of: ["broadcast-value-types.json", "broadcast-value-types-binary.json"]),
            "\(lossy)"
        )
    }
}
