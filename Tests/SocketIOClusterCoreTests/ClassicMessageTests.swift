import Foundation
import NIOCore
import SocketIOClusterCore
import SocketIOCore
import TestSupport
import Testing

/// `../shared` beside the repository, or `SHARED_DIR`.
func sharedDirectory() -> URL {
    if let shared = ProcessInfo.processInfo.environment["SHARED_DIR"] { return URL(fileURLWithPath: shared) }
    return Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared")
}

/// The messages of every scenario of a fixture folder.
func capturedMessages(_ folder: String) throws -> [(file: String, message: JSONValue)] {
    let root = sharedDirectory().appendingPathComponent("fixtures/redis-adapter/\(folder)")
    let files = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.hasSuffix(".json") }.sorted()
    var out: [(String, JSONValue)] = []
    for file in files {
        let scenario = try JSONParser.parse(Array(Data(contentsOf: root.appendingPathComponent(file))))
        for message in scenario["messages"]?.arrayValue ?? [] { out.append((file, message)) }
    }
    return out
}

extension JSONValue {
    var payloadBytes: ByteBuffer { ByteBuffer(bytes: Data(base64Encoded: self["payload_base64"]!.stringValue!)!) }
}

@Suite("Classic Redis adapter messages (Node 8.3.0 captures)")
struct ClassicMessageTests {
    /// Scenarios whose bytes this side writes differently on purpose: numbers as room names (read
    /// as text here), several rooms (sent in insertion order by Node, sorted here), and values that
    /// notepack loses or that a client could not receive as such (NaN, 1e300, dates).
    static let inexact: Set<String> = [
        "broadcast-numeric-room.json", "broadcast-rooms-except.json", "broadcast-value-types.json",
        "broadcast-typed-arrays.json", "all-rooms.json", "fetch-sockets.json", "fetch-sockets-from-b.json",
        "fetch-sockets-room-except.json", "chat-fetch-sockets.json", "chat-all-rooms.json", "server-side-emit.json",
    ]

    @Test(arguments: ["", "specific-response-channel"])
    func everyMessageDecodesAndEncodesBackAsNodeWroteIt(_ folder: String) throws {
        var checked = 0
        var exact = 0
        for (file, message) in try capturedMessages(folder) {
            guard message["command"] == "PUBLISH", let kind = message["kind"]?.stringValue,
                let channel = message["channel"]?.stringValue
            else { continue }
            let bytes = message.payloadBytes
            let reencoded: ByteBuffer
            if kind == "broadcast" {
                let broadcast = try ClassicMessage.Broadcast(decoding: bytes)
                #expect(broadcast.uid.count == 6, "\(file)")
                reencoded = broadcast.encoded
                #expect(try ClassicMessage.Broadcast(decoding: reencoded) == broadcast, "\(file)")
            } else if kind.hasPrefix("request:") {
                let namespace = channel.split(separator: "#").dropFirst().first.map(String.init) ?? "/"
                let request = try ClassicMessage.Request(decoding: bytes, namespace: namespace)
                reencoded = request.encoded
                #expect(try ClassicMessage.Request(decoding: reencoded, namespace: namespace) == request, "\(file)")
            } else {
                let response = try ClassicMessage.Response(decoding: bytes)
                reencoded = response.encoded
                #expect(try ClassicMessage.Response(decoding: reencoded) == response, "\(file)")
            }
            checked += 1
            if reencoded == bytes {
                exact += 1
            } else {
                #expect(Self.inexact.contains(file), "\(file) \(kind): \(String(buffer: reencoded).prefix(200))")
            }
        }
        #expect(checked >= 10 && exact >= checked / 2, "\(exact) of \(checked) exact")
        print("classic \(folder): \(exact) of \(checked) messages re-encoded byte for byte")
    }

    @Test func garbageIsRefusedWithAReason() {
        for bytes in [[0xC1], Array("{nope".utf8), Array(#"{"uid":"x","type":99}"#.utf8), Array(#"{"type":1}"#.utf8)] {
            #expect(throws: ClusterCodecError.self) {
                try ClassicMessage.Request(decoding: ByteBuffer(bytes: bytes), namespace: "/")
            }
        }
        #expect(throws: ClusterCodecError.self) {
            try ClassicMessage.Broadcast(decoding: ByteBuffer(bytes: [0x93, 0x01]))
        }
        #expect(throws: ClusterCodecError.self) {
            try ClassicMessage.Response(decoding: ByteBuffer(string: #"{"requestId":"x"}"#))
        }
    }

    @Test func jsonMessagesWriteBinaryAsNodesBuffers() {
        let request = ClassicMessage.Request.serverSideEmit(
            uid: "abcdef",
            requestId: nil,
            data: ["e", .binary(ByteBuffer(bytes: [97, 98]))]
        )
        #expect(
            String(buffer: request.encoded)
                == #"{"uid":"abcdef","type":6,"data":["e",{"type":"Buffer","data":[97,98]}]}"#
        )
    }
}
