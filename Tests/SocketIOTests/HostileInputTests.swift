import EngineIO
import EngineIOCore
import Foundation
import NIOCore
import SocketIO
import SocketIOCore
import TestSupport
import Testing

/// Attacks on the Socket.IO layer (issue 16): each is refused, and another client on the same
/// server is served meanwhile.
@Suite("Hostile Socket.IO input", .serialized, .timeLimit(.minutes(2)))
struct HostileInputTests {
    /// A server whose `/` echoes `echo` with an ack and records disconnections by `tag`.
    private func withEchoServer(
        _ config: SocketIOConfiguration,
        seen: Recorder,
        _ body: @Sendable (Int) async throws -> Void
    ) async throws {
        try await withSocketIO {
            $0 = config
        } setup: { io in
            io.onConnection { socket in
                let tag = socket.handshake.query["tag"] ?? "?"
                socket.onDisconnect { _, reason in seen.record("\(tag): \(reason)") }
                socket.on("echo") { _, args, ack in ack?(.array(args)) }
                socket.on("keys") { _, args, _ in
                    seen.record("\(tag): keys \(args.first?.objectValue?.count ?? -1)")
                }
                socket.on("upload") { _, args, _ in
                    let bytes = args.compactMap { $0.binaryValue?.readableBytes }.reduce(0, +)
                    seen.record("\(tag): upload \(bytes)")
                }
            }
        } _: { _, port in
            try await body(port)
        }
    }

    /// A client that is served: an acked echo comes back.
    private func assertServed(_ client: RawSocketIOClient, _ text: String) throws {
        try client.send(#"21["echo","\#(text)"]"#)
        #expect(try client.receive() == #"31[["\#(text)"]]"#)
    }

    @Test func attachmentsOverTheByteBudgetCloseTheConnection() async throws {
        let seen = Recorder()
        var config = SocketIOConfiguration()
        config.maxAttachmentBytes = 100_000
        try await withEchoServer(config, seen: seen) { port in
            try await blocking {
                let other = try connectedClient(port: port, query: "&tag=other")
                // Within the budget: three attachments of 30 000 bytes arrive whole.
                let fine = try connectedClient(port: port, query: "&tag=fine")
                let placeholders = (0..<3).map { #"{"_placeholder":true,"num":\#($0)}"# }.joined(separator: ",")
                try fine.send(#"53-["upload",\#(placeholders)]"#)
                for _ in 0..<3 { try fine.ws.send(binary: [UInt8](repeating: 1, count: 30_000)) }
                // Over it: the fourth of 64 announced attachments (120 000 bytes) is refused.
                let attacker = try connectedClient(port: port, query: "&tag=attacker")
                let many = (0..<64).map { #"{"_placeholder":true,"num":\#($0)}"# }.joined(separator: ",")
                try attacker.send(#"564-["upload",\#(many)]"#)
                for _ in 0..<4 { try attacker.ws.send(binary: [UInt8](repeating: 2, count: 30_000)) }
                #expect(try attacker.ws.receive() == .close(1002))
                try self.assertServed(other, "still here")
            }
            #expect(await seen.wait(for: "fine: upload 90000"))
            #expect(await seen.wait(for: "attacker: parse error"), "\(seen.all)")
            #expect(
                !seen.all.contains { $0.hasPrefix("attacker: upload") || $0 == "other: parse error" },
                "\(seen.all)"
            )
        }
    }

    @Test func attachmentsThatStopComingCloseTheConnectionInTime() async throws {
        let seen = Recorder()
        var config = SocketIOConfiguration()
        config.attachmentTimeout = .milliseconds(300)
        try await withEchoServer(config, seen: seen) { port in
            let started = ContinuousClock.now
            try await blocking {
                let other = try connectedClient(port: port, query: "&tag=other")
                let attacker = try connectedClient(port: port, query: "&tag=attacker")
                try attacker.send(#"52-["upload",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
                try attacker.ws.send(binary: [UInt8](repeating: 3, count: 50_000))  // and never the second
                #expect(try attacker.ws.receive() == .close(1002))
                try self.assertServed(other, "served")
            }
            #expect(await seen.wait(for: "attacker: parse error"), "\(seen.all)")
            let waited = ContinuousClock.now - started
            #expect(waited >= .milliseconds(300) && waited < .seconds(5), "closed after \(waited)")
            #expect(!seen.all.contains("other: parse error"), "\(seen.all)")
        }
    }

    @Test func aMegabyteObjectOfShortKeysIsParsedWithoutStallingOthers() async throws {
        let seen = Recorder()
        // 110 000 keys make 1.7 MB here: the limit is raised so that the parser sees all of it.
        var config = SocketIOConfiguration()
        config.engine.maxPayload = 2_000_000
        try await withEchoServer(config, seen: seen) { port in
            let keys = (0..<110_000).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
            try await blocking {
                let other = try connectedClient(port: port, query: "&tag=other")
                let sender = try connectedClient(port: port, query: "&tag=sender")
                try sender.send(#"2["keys",{"# + keys + "}]")
                // The same object as CONNECT auth, before any middleware: answered like any other.
                let auth = try RawSocketIOClient(port: port, query: "&tag=auth")
                #expect(try auth.connect(auth: "{" + keys + "}").hasPrefix(#"40{"sid":""#))
                try self.assertServed(other, "after")
                try self.assertServed(sender, "sender too")
            }
            #expect(await seen.wait(for: "sender: keys 110000"), "\(seen.all)")
        }
    }
}
