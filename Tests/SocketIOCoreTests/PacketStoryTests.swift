import Foundation
import NIOCore
import SocketIOCore
import TestSupport
import Testing

struct PacketExpectation: Decodable, Sendable {
    var kind: String
    var namespace: String
    var ackID: UInt64?
    var payload: String?
}

struct PacketStory: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    var wire: String
    var attachments: [String]?
    var packet: PacketExpectation?
    var error: String?
    var encodesAs: String?
    var encodedAttachments: [String]?
    var testDescription: String { self.name }

    var attachmentBuffers: [ByteBuffer] {
        (self.attachments ?? []).map { ByteBuffer(bytes: Data(base64Encoded: $0)!) }
    }
}

struct PacketStoryFile: Decodable {
    var stories: [PacketStory]
}

let packetStories = (try? Fixtures.load(PacketStoryFile.self, "socketio/packets.json").stories) ?? []

/// Turns `{"$binary": base64}` objects of a fixture payload into binary values.
func withBinaries(_ value: JSONValue) -> JSONValue {
    switch value {
    case .object(let object):
        if object.count == 1, let b64 = object["$binary"]?.stringValue, let data = Data(base64Encoded: b64) {
            return .binary(ByteBuffer(bytes: data))
        }
        return .object(JSONObject(object.entries.map { ($0.key, withBinaries($0.value)) }))
    case .array(let items): return .array(items.map(withBinaries))
    case .null, .bool, .number, .string, .binary: return value
    }
}

func kind(named name: String) -> SocketIOPacket.Kind {
    switch name {
    case "connect": return .connect
    case "disconnect": return .disconnect
    case "event": return .event
    case "ack": return .ack
    case "connectError": return .connectError
    case "binaryEvent": return .binaryEvent
    default: return .binaryAck
    }
}

/// Feeds a story through a reassembler, attachments one at a time.
func reassemble(_ story: PacketStory) throws(SocketIOCodecError) -> SocketIOPacket {
    var reassembler = SocketIOPacketReassembler(maxAttachments: 64)
    var result = try reassembler.textReceived(story.wire)
    for (i, attachment) in story.attachmentBuffers.enumerated() {
        #expect(result == .needsAttachments(story.attachmentBuffers.count - i))
        result = try reassembler.binaryReceived(attachment)
    }
    guard case .complete(let packet) = result else {
        Issue.record("packet incomplete after every attachment: \(result)")
        throw .emptyPacket
    }
    return packet
}

@Suite("Socket.IO packet stories")
struct PacketStoryTests {
    @Test func fixturesLoaded() {
        #expect(packetStories.count > 40)
    }

    @Test(arguments: packetStories)
    func decodes(_ story: PacketStory) throws {
        if let expectedError = story.error {
            #expect(throws: SocketIOCodecError.self) { try reassemble(story) }
            do {
                _ = try reassemble(story)
            } catch {
                #expect(error.name == expectedError)
            }
            return
        }
        let expected = try #require(story.packet)
        let packet = try reassemble(story)
        #expect(packet.kind == kind(named: expected.kind))
        #expect(packet.namespace == expected.namespace)
        #expect(packet.ackID == expected.ackID)
        #expect(packet.payload == expected.payload.map { withBinaries(try! JSONParser.parse($0)) })
    }

    @Test(arguments: packetStories.filter { $0.error == nil })
    func encodes(_ story: PacketStory) throws {
        let packet = try reassemble(story)
        let encoded = packet.encode()
        #expect(String(buffer: encoded.text) == story.encodesAs ?? story.wire)
        let expected = story.encodedAttachments ?? story.attachments ?? []
        #expect(encoded.attachments.map { Data($0.readableBytesView).base64EncodedString() } == expected)
    }

    /// Every prefix of every story's text decodes or fails with a named error; none traps.
    @Test(arguments: packetStories)
    func everyPrefixFailsCleanly(_ story: PacketStory) {
        let bytes = Array(story.wire.utf8)
        for length in 0...bytes.count {
            var reassembler = SocketIOPacketReassembler(maxAttachments: 64)
            _ = try? reassembler.textReceived(String(decoding: bytes[0..<length], as: UTF8.self))
        }
    }

    @Test func textWhileReassemblingIsAnError() throws {
        var reassembler = SocketIOPacketReassembler(maxAttachments: 4)
        #expect(try reassembler.textReceived(#"51-["e",{"_placeholder":true,"num":0}]"#) == .needsAttachments(1))
        #expect(throws: SocketIOCodecError.unexpectedTextWhileReassembling) { try reassembler.textReceived(#"2["e"]"#) }
    }

    @Test func attachmentsOverTheByteBudgetAreRefusedAndDropped() throws {
        var reassembler = SocketIOPacketReassembler(maxAttachments: 8, maxAttachmentBytes: 10)
        #expect(try reassembler.textReceived(#"53-["e",{"_placeholder":true,"num":0}]"#) == .needsAttachments(3))
        #expect(try reassembler.binaryReceived(ByteBuffer(repeating: 1, count: 6)) == .needsAttachments(2))
        #expect(reassembler.bufferedBytes == 6)
        #expect(throws: SocketIOCodecError.attachmentsTooLarge(limit: 10)) {
            try reassembler.binaryReceived(ByteBuffer(repeating: 1, count: 5))
        }
        // Nothing is kept; the next packet starts afresh.
        #expect(!reassembler.isReassembling)
        #expect(reassembler.bufferedBytes == 0)
        #expect(try reassembler.textReceived(#"51-["e",{"_placeholder":true,"num":0}]"#) == .needsAttachments(1))
        guard case .complete = try reassembler.binaryReceived(ByteBuffer(repeating: 1, count: 10)) else {
            Issue.record("exactly the budget must be accepted")
            return
        }
    }

    @Test func unexpectedAttachmentIsAnError() {
        var reassembler = SocketIOPacketReassembler(maxAttachments: 4)
        #expect(throws: SocketIOCodecError.unexpectedAttachment) { try reassembler.binaryReceived(ByteBuffer()) }
    }
}

@Suite("JSON")
struct JSONTests {
    @Test(arguments: [
        #"{"b":1,"a":[1.50,-0,1e3,true,false,null,"x"]}"#, #"[]"#, #"{}"#, #""\u0000\"\\""#, #"[[[[]]]]"#,
        #"-12.5E-3"#, #""😀é""#,
    ])
    func roundTripsExactly(_ text: String) throws {
        #expect(try JSONParser.parse(text).jsonText == text)
    }

    @Test(arguments: [
        "", "[", "{", #"{"a"}"#, #"{"a":}"#, "01", "1.", ".5", "-", "1e", "tru", "nul", #""\x""#, "[1,]", #"{"a":1,}"#,
        "\"\u{01}\"", #""\ud83d"x"#, "1 2",
    ])
    func rejectsInvalid(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00\u00e9\n\/""#) == .string("😀é\n/"))
        #expect(try JSONParser.parse(#""\ud83d""#) == .string("\u{FFFD}"))
    }

    @Test func limitsNesting() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect((try? JSONParser.parse(fine)) != nil)
    }

    @Test func duplicateKeysKeepFirstPositionAndLastValue() throws {
        let value = try JSONParser.parse(#"{"a":1,"b":2,"a":3}"#)
        #expect(value.jsonText == #"{"a":3,"b":2}"#)
    }

    /// A hostile object: `count` distinct short keys (about 1 MB for 110 000), plus duplicates of
    /// the first and a middle key at the end. Parsing and writing it must stay linear (each key
    /// used to be looked up by scanning every earlier one: 22 s of one event loop for this object).
    static func manyKeys(_ count: Int) -> (text: String, expected: String) {
        var text = "{"
        var expected = "{"
        for i in 0..<count {
            let value = i == 0 ? "\"last\"" : i == count / 2 ? "[1]" : String(i)
            text += "\"k\(i)\":\(i),"
            expected += (i == 0 ? "" : ",") + "\"k\(i)\":\(value)"
        }
        text += "\"k\(count / 2)\":[1],\"k0\":\"last\"}"
        expected += "}"
        return (text, expected)
    }

    @Test(.timeLimit(.minutes(1)))
    func largeObjectsParseWithDuplicateSemanticsIntact() throws {
        let (text, expected) = Self.manyKeys(110_000)
        #expect(text.utf8.count > 1_000_000)
        let value = try JSONParser.parse(text)
        let object = try #require(value.objectValue)
        #expect(object.count == 110_000)
        #expect(object.keys.first == "k0")
        #expect(object.keys.last == "k109999")
        #expect(object["k0"] == "last")
        #expect(object["k55000"] == [1])
        #expect(object["k109998"] == 109_998)
        #expect(object["nope"] == nil)
        #expect(value.jsonText == expected)
        // The same object as a CONNECT's auth payload (parsed before any middleware runs).
        let packet = try SocketIOPacket.decode("0" + text, maxAttachments: 0).packet
        #expect(packet.payload == value)
    }

    @Test func objectsBehaveTheSameAboveAndBelowTheIndexThreshold() {
        for count in [JSONObject.indexThreshold - 1, JSONObject.indexThreshold, JSONObject.indexThreshold + 3] {
            var object = JSONObject((0..<count).map { ("k\($0)", JSONValue(integerLiteral: $0)) })
            #expect(object.count == count)
            object["k1"] = "one"
            object["new"] = true
            object["k0"] = nil
            #expect(object.keys == (1..<count).map { "k\($0)" } + ["new"])
            #expect(object["k1"] == "one")
            #expect(object["k2"] == 2)
            #expect(object["new"] == true)
            #expect(object["k0"] == nil)
            // Equality and hashing look at the entries only, not at whether an index was built.
            let rebuilt = JSONObject(object.entries.map { ($0.key, $0.value) })
            #expect(rebuilt == object)
            #expect(rebuilt.hashValue == object.hashValue)
        }
    }

    @Test func placeholdersAreFilledInLargeObjects() throws {
        let keys = (0..<1000).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        var reassembler = SocketIOPacketReassembler(maxAttachments: 1)
        let text = #"51-["e",{"# + keys + #","bin":{"_placeholder":true,"num":0}}]"#
        #expect(try reassembler.textReceived(text) == .needsAttachments(1))
        guard case .complete(let packet) = try reassembler.binaryReceived(ByteBuffer(bytes: [1, 2])) else {
            Issue.record("not complete")
            return
        }
        let object = try #require(packet.payload?.arrayValue?[1].objectValue)
        #expect(object.count == 1001)
        #expect(object["bin"] == .binary(ByteBuffer(bytes: [1, 2])))
        #expect(object["k999"] == 999)
    }

    @Test func literalsAndAccessors() {
        let value: JSONValue = ["name": "x", "n": 3, "ok": true, "list": [1, nil]]
        #expect(value.jsonText == #"{"name":"x","n":3,"ok":true,"list":[1,null]}"#)
        #expect(value["n"]?.intValue == 3)
        #expect(value["name"]?.stringValue == "x")
        #expect(JSONValue.number(JSONNumber(2.5)).jsonText == "2.5")
        #expect(JSONValue.number(JSONNumber(Double.infinity)).jsonText == "null")
    }
}

@Suite("Room index")
struct RoomIndexTests {
    @Test func selectsRoomsMinusExcept() {
        var index = RoomIndex()
        index.join("a", ["a", "room1"])
        index.join("b", ["b", "room1", "room2"])
        index.join("c", ["c", "room2"])
        #expect(Set(index.select(BroadcastOptions())) == ["a", "b", "c"])
        #expect(Set(index.select(BroadcastOptions(rooms: ["room1"]))) == ["a", "b"])
        #expect(Set(index.select(BroadcastOptions(rooms: ["room1", "room2"]))) == ["a", "b", "c"])
        #expect(index.select(BroadcastOptions(rooms: ["room1", "room2"])).count == 3, "no duplicates")
        #expect(Set(index.select(BroadcastOptions(rooms: ["room2"], except: ["b"]))) == ["c"])
        #expect(Set(index.select(BroadcastOptions(except: ["room1"]))) == ["c"])
        #expect(index.select(BroadcastOptions(rooms: ["nope"])).isEmpty)
    }

    @Test func leavingAndRemovingCleansUp() {
        var index = RoomIndex()
        index.join("a", ["a", "r"])
        index.leave("a", "r")
        #expect(index.rooms == ["a"])
        index.remove("a")
        #expect(index.rooms.isEmpty)
        #expect(index.socketCount == 0)
        #expect(index.rooms(of: "a") == nil)
    }

    @Test func optionsTravelInNodesShape() throws {
        var options = BroadcastOptions(rooms: ["r", "a"], except: ["x"], volatile: true)
        options.compress = false
        options.flags.timeout = 2000
        let json = options.jsonValue()
        #expect(
            json.jsonText
                == #"{"rooms":["a","r"],"except":["x"],"flags":{"volatile":true,"compress":false,"timeout":2000}}"#
        )
        #expect(try BroadcastOptions(json: json) == options)
        #expect(options.jsonValue(withFlags: false).jsonText == #"{"rooms":["a","r"],"except":["x"]}"#)
        // Node's captured options: a numeric room, no flags, unknown flags ignored.
        let node = try JSONParser.parse(#"{"rooms":[42,"room1"],"except":[],"flags":{"future":1}}"#)
        let read = try BroadcastOptions(json: node)
        #expect(read.rooms == ["42", "room1"] && read.except.isEmpty && read.flags == BroadcastFlags())
        #expect(try BroadcastOptions(json: JSONParser.parse(#"{"rooms":[],"except":[]}"#)) == BroadcastOptions())
        for bad in [#"[]"#, #"{"rooms":"a"}"#, #"{"rooms":[true]}"#, #"{"flags":{"volatile":1}}"#] {
            #expect(throws: SocketIOCodecError.self) { try BroadcastOptions(json: JSONParser.parse(bad)) }
        }
    }
}
