import EngineIO
import EngineIOCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SocketIO
import SocketIOCore
import TestSupport
import Testing

/// The resident memory of this process, in KiB (Linux).
func residentKiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return Int(line.split(separator: " ")[1]) ?? 0
}

@Suite("Slow consumers, volatile packets and room concurrency", .serialized, .timeLimit(.minutes(2)))
struct SlowConsumerTests {
    @Test func aClientThatStopsReadingIsDisconnectedAndOthersAreUnaffected() async throws {
        let seen = Recorder()
        let blob = JSONValue.string(String(repeating: "x", count: 64 * 1024))
        let rssBefore = residentKiB()
        try await withSocketIO { config in
            config.maxQueuedBytes = 1 << 20
        } setup: { io in
            io.onConnection { socket in
                let tag = socket.handshake.query["tag"] ?? "?"
                socket.onDisconnect { _, reason in seen.record("\(tag): \(reason)") }
                socket.on("flood") { socket, _, _ in
                    // 2 000 x 64 KiB = 125 MiB, far more than the kernel's socket buffers.
                    for _ in 0..<2000 where socket.connected { socket.emit("blob", blob) }
                    seen.record("flood done")
                }
            }
        } _: { io, port in
            let (slow, fast) = try await blocking { () -> (RawSocketIOClient, RawSocketIOClient) in
                let slow = try RawSocketIOClient(port: port, query: "&tag=slow")
                _ = try slow.connect()
                let fast = try RawSocketIOClient(port: port, query: "&tag=fast")
                _ = try fast.connect()
                try slow.send(#"2["flood"]"#)  // and never read again
                return (slow, fast)
            }
            #expect(await seen.wait(for: "slow: transport buffer full", seconds: 10), "\(seen.all)")
            #expect(await seen.wait(for: "flood done"))
            io.emit("hello", "fast")
            let greeting = try await blocking { try fast.receive() }
            #expect(greeting == #"2["hello","fast"]"#)
            #expect(!seen.all.contains { $0.hasPrefix("fast:") })
            withExtendedLifetime(slow) {}
        }
        // What the slow client could not take was released: the process holds no flood.
        let growth = residentKiB() - rssBefore
        #expect(growth < 48 * 1024, "RSS grew by \(growth) KiB")
    }

    @Test func compressFlagReachesTheWire() async throws {
        let big = JSONValue.string(String(repeating: "compressible ", count: 200))
        try await withSocketIO { _ in
        } setup: { io in
            io.onConnection { socket in
                socket.emit("a", big)
                socket.compress(false).emit("b", big)
                socket.namespace.broadcast.compress(false).emit("c", big)
                socket.namespace.broadcast.emit("d", big)
            }
        } _: { _, port in
            try await blocking {
                let client = try RawSocketIOClient(
                    port: port,
                    headers: [("Sec-WebSocket-Extensions", "permessage-deflate")]
                )
                try client.ws.send("40")
                _ = try client.ws.receiveText()  // the CONNECT answer (small: uncompressed)
                var flags: [Bool] = []
                for _ in 0..<4 {
                    _ = try client.ws.receive()
                    flags.append(client.ws.lastRSV1)
                }
                #expect(flags == [true, false, false, true])
            }
        }
    }

    @Test func compressFlagDecidesPollingCompression() async throws {
        let big = JSONValue.string(String(repeating: "compressible ", count: 200))
        try await withSocketIO { _ in
        } setup: { _ in
        } _: { io, port in
            try await blocking {
                let path = try pollingClient(port: port)
                let gzip = [("Accept-Encoding", "gzip")]
                // As in the reference server, a response is compressed when any of its packets
                // may be: not when all were sent with compress(false).
                io.compress(false).emit("b", big)
                io.compress(false).emit("c", big)
                let plain = try RawHTTP.request(port: port, "GET", path, headers: gzip)
                #expect(plain.header("content-encoding") == nil)
                #expect(plain.body.hasPrefix(#"42["b","compressible "#))
                io.compress(false).emit("b", big)
                io.emit("a", big)
                let mixed = try RawHTTP.request(port: port, "GET", path, headers: gzip)
                #expect(mixed.header("content-encoding") == "gzip")
                io.compress(false).emit("b", big)
                #expect(try RawHTTP.request(port: port, "GET", path, headers: gzip).header("content-encoding") == nil)
                io.emit("a", big)
                #expect(
                    try RawHTTP.request(port: port, "GET", path, headers: gzip).header("content-encoding") == "gzip"
                )
            }
        }
    }

    @Test func volatilePacketsAreDroppedWhenTheClientCannotTakeThem() async throws {
        try await withSocketIO { _ in
        } setup: { _ in
        } _: { io, port in
            try await blocking {
                let path = try pollingClient(port: port)
                // No long-poll is waiting: the volatile emit is dropped, the normal one queued.
                io.volatile.emit("v", 1)
                io.emit("n", 2)
                let next = try RawHTTP.request(port: port, "GET", path)
                #expect(next.body == #"42["n",2]"#)
            }
        }
    }

    @Test func tenThousandSocketsJoinAndLeaveRoomsConcurrently() async throws {
        let count = 10_000
        try await withSocketIO { config in
            config.engine.pingInterval = .seconds(120)
            config.engine.maxSessions = 20_000
        } setup: { io in
            io.onConnection { socket in
                socket.on("join") { socket, args, _ in socket.join(args[0].stringValue!) }
            }
        } _: { io, port in
            // 10 000 polling sessions (they hold no file descriptor between requests), connected
            // to `/` from 16 threads at once.
            let threads = 16
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in 0..<threads {
                    group.addTask {
                        try await blocking {
                            for i in stride(from: t, to: count, by: threads) {
                                let r = try RawHTTP.request(port: port, "GET", "/socket.io/?EIO=4&transport=polling")
                                let sid = try #require(socketID(r.body))
                                let path = "/socket.io/?EIO=4&transport=polling&sid=\(sid)"
                                // Connect, then ask (as the client) to join a room, in one POST.
                                let body = "40\u{1e}42[\"join\",\"c\(i % 10)\"]"
                                let ok = try RawHTTP.request(port: port, "POST", path, body: body)
                                #expect(ok.body == "ok")
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let sockets = await io.fetchSockets()
            #expect(sockets.count == count)
            // Meanwhile on the server side: every socket joins and leaves rooms from many tasks.
            await withTaskGroup(of: Void.self) { group in
                for (i, socket) in sockets.enumerated() {
                    group.addTask {
                        socket.join("s\(i % 100)", "all", "temp")
                        socket.leave("temp")
                        if i % 2 == 0 { socket.leave("all") }
                    }
                }
            }
            for room in 0..<10 {
                #expect(await io.to("c\(room)").fetchSockets().count == count / 10)
            }
            for room in 0..<100 {
                #expect(await io.to("s\(room)").fetchSockets().count == count / 100)
            }
            #expect(await io.to("all").fetchSockets().count == count / 2)
            #expect(await io.to("temp").fetchSockets().isEmpty)
            #expect(await io.sockets.adapter.allRooms().count == count + 10 + 100 + 1)
        }
    }
}
