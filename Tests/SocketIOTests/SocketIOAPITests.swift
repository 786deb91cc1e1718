import EngineIO
import EngineIOCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SocketIO
import SocketIOCore
import TestSupport
import Testing

@Suite("Socket.IO server API", .timeLimit(.minutes(1)))
struct SocketIOAPITests {
    @Test func middlewareRefusesWithDataAndAcceptsWithToken() async throws {
        let seen = Recorder()
        try await withSocketIO { io in
            let admin = io.of("/admin")
            admin.use { socket in
                guard socket.handshake.auth["token"]?.stringValue == "secret" else {
                    throw SocketIOConnectError("unauthorized", data: ["code": 401])
                }
                socket.data["user"] = "alice"
            }
            admin.onConnection { socket in
                seen.record("connected \(socket.data["user"]?.stringValue ?? "?")")
            }
        } _: { _, port in
            try await blocking {
                let client = try RawSocketIOClient(port: port)
                #expect(
                    try client.connect(namespace: "/admin")
                        == #"44/admin,{"message":"unauthorized","data":{"code":401}}"#
                )
                #expect(
                    try client.connect(namespace: "/admin", auth: #"{"token":"secret"}"#).hasPrefix(
                        #"40/admin,{"sid":""#
                    )
                )
            }
            #expect(await seen.wait(for: "connected alice"))
        }
    }

    @Test func throwingAnyErrorRefusesWithItsDescription() async throws {
        struct Nope: Error, CustomStringConvertible { var description: String { "nope" } }
        try await withSocketIO { io in
            io.use { _ in throw Nope() }
        } _: { _, port in
            try await blocking {
                let client = try RawSocketIOClient(port: port)
                #expect(try client.connect() == #"44{"message":"nope"}"#)
            }
        }
    }

    @Test func dynamicNamespacesShareHandlers() async throws {
        let seen = Recorder()
        try await withSocketIO { io in
            let parent = try! io.dynamicNamespace(pattern: "/room-[0-9]+")
            parent.onConnection { socket in
                seen.record("join \(socket.namespace.name)")
                socket.on("ping") { socket, _, ack in ack?(.string(socket.namespace.name)) }
            }
        } _: { io, port in
            try await blocking {
                let a = try RawSocketIOClient(port: port)
                #expect(try a.connect(namespace: "/room-1").hasPrefix("40/room-1,"))
                #expect(try a.connect(namespace: "/room-x") == #"44/room-x,{"message":"Invalid namespace"}"#)
                try a.send(#"2/room-1,5["ping"]"#)
                #expect(try a.receive() == #"3/room-1,5["/room-1"]"#)
                let b = try RawSocketIOClient(port: port)
                #expect(try b.connect(namespace: "/room-22").hasPrefix("40/room-22,"))
            }
            #expect(await seen.wait(for: "join /room-22"))
        }
    }

    @Test func roomsAndBroadcasts() async throws {
        try await withSocketIO { io in
            io.onConnection { socket in
                socket.on("join") { socket, args, ack in
                    socket.join(args[0].stringValue!)
                    ack?(.bool(true))
                }
                socket.on("shout") { socket, args, _ in socket.to(args[0].stringValue!).emit("shout", args[1]) }
                socket.on("all") { socket, args, _ in socket.namespace.to(args[0].stringValue!).emit("all", args[1]) }
                socket.on("others") { socket, args, _ in socket.broadcast.emit("others", args[0]) }
            }
        } _: { io, port in
            let clients = try await blocking { () -> [RawSocketIOClient] in
                let clients = try (0..<3).map { _ in try RawSocketIOClient(port: port) }
                for client in clients { _ = try client.connect() }
                for client in clients.prefix(2) {
                    try client.send(#"21["join","red"]"#)
                    #expect(try client.receive() == "31[true]")
                }
                // socket.to(room): the room minus the sender.
                try clients[0].send(#"2["shout","red",1]"#)
                #expect(try clients[1].receive() == #"2["shout",1]"#)
                // namespace.to(room): the whole room, sender included.
                try clients[2].send(#"2["all","red",2]"#)
                #expect(try clients[0].receive() == #"2["all",2]"#)
                #expect(try clients[1].receive() == #"2["all",2]"#)
                // socket.broadcast: everyone but the sender.
                try clients[0].send(#"2["others",3]"#)
                #expect(try clients[1].receive() == #"2["others",3]"#)
                #expect(try clients[2].receive() == #"2["others",3]"#)
                return clients
            }
            // Server-side operators and utilities.
            let sockets = await io.fetchSockets()
            #expect(sockets.count == 3)
            let red = await io.to("red").fetchSockets()
            #expect(red.count == 2)
            #expect(red.allSatisfy { $0.rooms.contains("red") && $0.rooms.contains($0.id) })
            io.socketsJoin("blue")
            #expect(await io.to("blue").fetchSockets().count == 3)
            io.to("red").socketsLeave("blue")
            #expect(await io.to("blue").fetchSockets().count == 1)
            #expect(await io.except("red").fetchSockets().count == 1)
            withExtendedLifetime(clients) {}  // the connections stay open until here
        }
    }

    @Test func emitWithAckAnswerTimeoutAndDefault() async throws {
        let sockets = NIOLockedValueBox<[SocketIOSocket]>([])
        try await withSocketIO {
            $0.defaultAckTimeout = .milliseconds(300)
        } setup: { io in
            io.onConnection { socket in sockets.withLockedValue { $0.append(socket) } }
        } _: { _, port in
            let client = try await blocking { try connectedClient(port: port) }
            let socket = try #require(await firstSocket(sockets))
            async let answer = socket.emitWithAck("question", "q", timeout: .seconds(5))
            try await blocking {
                let packet = try client.receive()
                #expect(packet.hasPrefix("2") && packet.hasSuffix(#"["question","q"]"#))
                let id = packet.dropFirst().prefix { $0.isNumber }
                try client.send("3\(id)[42,\"ok\"]")
            }
            #expect(try await answer == [42, "ok"])
            // No answer: the explicit timeout, then the server-wide default.
            await #expect(throws: SocketIOAckError.timeout) {
                try await socket.emitWithAck("silent", timeout: .milliseconds(100))
            }
            let started = Date()
            await #expect(throws: SocketIOAckError.timeout) { try await socket.emitWithAck("silent") }
            #expect(Date().timeIntervalSince(started) >= 0.25)
            // A socket that leaves fails its pending acks at once.
            async let pending = socket.emitWithAck("never", timeout: .seconds(10))
            try await blocking { try client.send("1") }
            do {
                _ = try await pending
                Issue.record("the ack should fail when the socket leaves")
            } catch {
                #expect(error as? SocketIOAckError == .disconnected)
            }
            withExtendedLifetime(client) {}
        }
    }

    @Test func pendingAckLimit() async throws {
        let sockets = NIOLockedValueBox<[SocketIOSocket]>([])
        try await withSocketIO {
            $0.maxPendingAcks = 2
        } setup: { io in
            io.onConnection { socket in sockets.withLockedValue { $0.append(socket) } }
        } _: { _, port in
            let client = try await blocking { try connectedClient(port: port) }
            let socket = try #require(await firstSocket(sockets))
            async let first = socket.emitWithAck("a", timeout: .milliseconds(500))
            async let second = socket.emitWithAck("b", timeout: .milliseconds(500))
            // Both are registered once the client has received both events.
            try await blocking {
                _ = try client.receive()
                _ = try client.receive()
            }
            await #expect(throws: SocketIOAckError.tooManyPendingAcks) { try await socket.emitWithAck("c") }
            _ = try? await (first, second)
            withExtendedLifetime(client) {}
        }
    }

    @Test func broadcastAckCollectsPartialResults() async throws {
        try await withSocketIO { _ in
        } _: { io, port in
            let clients = try await blocking { () -> [RawSocketIOClient] in
                let clients = try (0..<3).map { _ in try RawSocketIOClient(port: port) }
                for client in clients { _ = try client.connect() }
                return clients
            }
            async let result = io.sockets.timeout(.milliseconds(400)).emitWithAck("poll", "q")
            let answered = try await blocking { () -> [String] in
                var ids: [String] = []
                for (i, client) in clients.enumerated() {
                    let packet = try client.receive()
                    let id = packet.dropFirst().prefix { $0.isNumber }
                    #expect(packet == "2\(id)[\"poll\",\"q\"]")
                    if i < 2 {
                        try client.send("3\(id)[\(i)]")
                        ids.append(String(id))
                    }
                }
                return ids
            }
            let outcome = await result
            #expect(answered.count == 2)
            #expect(outcome.responses.count == 2)
            #expect(Set(outcome.responses) == [0, 1])
            #expect(Set(outcome.answers.compactMap(\.socketID)).count == 2)
            #expect(outcome.missingLocal.count == 1 && outcome.expected == 3)
            #expect(!outcome.isComplete)
            // Everyone answering completes without waiting for the timeout.
            async let full = io.sockets.timeout(.seconds(10)).emitWithAck("poll2")
            try await blocking {
                for client in clients {
                    let packet = try client.receive()
                    let id = packet.dropFirst().prefix { $0.isNumber }
                    try client.send("3\(id)[true]")
                }
            }
            let complete = await full
            #expect(complete.isComplete && complete.responses.count == 3)
            // Without a timeout (the server's default), from `io` and from the namespace.
            for (n, event) in ["poll3", "poll4"].enumerated() {
                async let answers =
                    n == 0 ? await io.emitWithAck(event, "x") : await io.sockets.emitWithAck(event, "x")
                try await blocking {
                    for client in clients {
                        let packet = try client.receive()
                        let id = packet.dropFirst().prefix { $0.isNumber }
                        #expect(packet == "2\(id)[\"\(event)\",\"x\"]")
                        try client.send("3\(id)[\"\(event)\"]")
                    }
                }
                let result = await answers
                #expect(result.isComplete && Set(result.responses) == [.string(event)] && result.responses.count == 3)
            }
        }
    }

    @Test func binaryBothWays() async throws {
        try await withSocketIO { _ in
        } setup: { io in
            io.onConnection { socket in
                socket.on("upload") { socket, args, ack in
                    #expect(args[0].dataValue == Data([1, 2, 3]))
                    let bytes = args[0].binaryValue!
                    ack?(.number(JSONNumber(bytes.readableBytes)), .binary(bytes))
                    socket.emit("file", ["name": "f", "data": .data(Data([9, 8]))])
                }
            }
        } _: { _, port in
            try await blocking {
                let client = try RawSocketIOClient(port: port)
                _ = try client.connect()
                try client.send(#"51-7["upload",{"_placeholder":true,"num":0}]"#)
                try client.ws.send(binary: [1, 2, 3])
                #expect(try client.receive() == #"61-7[3,{"_placeholder":true,"num":0}]"#)
                #expect(try client.ws.receive() == .binary([1, 2, 3]))
                #expect(try client.receive() == #"51-["file",{"name":"f","data":{"_placeholder":true,"num":0}}]"#)
                #expect(try client.ws.receive() == .binary([9, 8]))
            }
        }
    }

    @Test func listenersMiddlewareAndCodable() async throws {
        struct Order: Codable, Sendable, Equatable {
            var item: String
            var count: Int
        }
        let seen = Recorder()
        try await withSocketIO { _ in
        } setup: { io in
            io.onConnection { socket in
                socket.onAny { _, name, args in seen.record("any \(name) \(args.count)") }
                socket.onAnyOutgoing { _, name, _ in seen.record("out \(name)") }
                socket.use { _, name, _ in
                    if name == "forbidden" { throw SocketIOConnectError("no") }
                }
                socket.on("forbidden") { _, _, _ in seen.record("forbidden ran") }
                socket.on("order", as: Order.self) { socket, order, ack in
                    try? socket.emit("receipt", encoding: Order(item: order.item, count: order.count * 2))
                    ack?(true)
                }
            }
        } _: { _, port in
            try await blocking {
                let client = try RawSocketIOClient(port: port)
                _ = try client.connect()
                try client.send(#"2["forbidden"]"#)
                try client.send(#"21["order",{"item":"tea","count":2}]"#)
                #expect(try client.receive() == #"2["receipt",{"count":4,"item":"tea"}]"#)
                #expect(try client.receive() == "31[true]")
            }
            #expect(await seen.wait(for: "any order 1"))
            #expect(await seen.wait(for: "out receipt"))
            #expect(!seen.all.contains("forbidden ran"))
            #expect(!seen.all.contains { $0.hasPrefix("any forbidden") })
        }
    }

    @Test func everyListenerRunsAndListenersCanBeRemoved() async throws {
        let seen = Recorder()
        try await withSocketIO { _ in
        } setup: { io in
            io.onConnection { socket in
                socket.use { _, _, args in
                    if args.first?.stringValue == "drop" { throw SocketIOConnectError("dropped") }
                }
                let any = socket.onAny { _, name, _ in seen.record("any \(name)") }
                socket.on("greet") { _, args, ack in
                    seen.record("first \(args.first?.stringValue ?? "")")
                    ack?("one")
                }
                socket.on("greet") { _, _, ack in
                    seen.record("second")
                    ack?("two")
                }
                socket.once("greet") { _, _, _ in seen.record("once") }
                let late = socket.on("greet") { _, _, _ in seen.record("late") }
                socket.on("unlate") { socket, _, ack in
                    ack?(
                        .bool(socket.off(late)),
                        .bool(socket.off(late)),
                        .number(JSONNumber(socket.listenerCount("greet")))
                    )
                }
                socket.once("maybe") { _, args, ack in ack?(.string("once \(args.first?.stringValue ?? "")")) }
                socket.on("count") { socket, args, ack in
                    ack?(.number(JSONNumber(socket.listenerCount(args.first?.stringValue ?? ""))))
                }
                socket.on("clear") { socket, _, ack in
                    socket.removeAllListeners("greet")
                    ack?(.bool(socket.off(any)), .number(JSONNumber(socket.listenerCount("greet"))))
                }
                // A listener removed while the event is being dispatched still gets that event.
                let second = NIOLockedValueBox<SocketIOListener?>(nil)
                socket.on("chain") { socket, _, _ in
                    seen.record("chain a")
                    if let listener = second.withLockedValue({ $0 }) { socket.off(listener) }
                }
                second.withLockedValue { $0 = socket.on("chain") { _, _, _ in seen.record("chain b") } }
                let removed = socket.onDisconnect { _, _ in seen.record("gone (removed)") }
                socket.onDisconnect { _, reason in seen.record("gone \(reason)") }
                socket.off(removed)
            }
        } _: { _, port in
            try await blocking {
                let client = try connectedClient(port: port)
                // Every listener runs, in order; the ack they share answers once, with the first.
                try client.send(#"21["greet","a"]"#)
                #expect(try client.receive() == #"31["one"]"#)
                #expect(seen.all == ["any greet", "first a", "second", "once", "late"])
                try client.send(#"22["unlate"]"#)
                #expect(try client.receive() == "32[true,false,2]")
                try client.send(#"23["greet","b"]"#)
                #expect(try client.receive() == #"33["one"]"#)
                #expect(seen.all.suffix(3) == ["any greet", "first b", "second"])
                // An event that middleware drops does not use up a `once` listener.
                try client.send(#"24["maybe","drop"]"#)
                try client.send(#"25["maybe","ok"]"#)
                #expect(try client.receive() == #"35["once ok"]"#)
                try client.send(#"26["maybe","again"]"#)
                try client.send(#"27["count","maybe"]"#)
                #expect(try client.receive() == "37[0]")
                try client.send(#"28["clear"]"#)
                #expect(try client.receive() == "38[true,0]")
                try client.send(#"29["greet","c"]"#)
                try client.send(#"210["count","greet"]"#)
                #expect(try client.receive() == "310[0]")
                #expect(!seen.all.contains("first c"))
                #expect(seen.all.last == "any clear")
                try client.send(#"2["chain"]"#)
                try client.send(#"2["chain"]"#)
                try client.send(#"211["count","chain"]"#)
                #expect(try client.receive() == "311[1]")
                #expect(seen.all.filter { $0.hasPrefix("chain") } == ["chain a", "chain b", "chain a"])
                try client.send("1")
            }
            #expect(await seen.wait(for: "gone client namespace disconnect"))
            #expect(!seen.all.contains("gone (removed)"))
        }
    }

    @Test func disconnectReasons() async throws {
        let seen = Recorder()
        try await withSocketIO { config in
            config.engine.pingInterval = .milliseconds(200)
            config.engine.pingTimeout = .milliseconds(200)
        } setup: { io in
            io.onConnection { socket in
                let tag = socket.handshake.query["tag"] ?? "?"
                socket.onDisconnecting { socket, _ in
                    seen.record("disconnecting \(tag) \(socket.rooms.contains(socket.id))")
                }
                socket.onDisconnect { _, reason in seen.record("\(tag): \(reason)") }
                socket.on("kick") { socket, _, _ in socket.disconnect() }
                socket.on("close") { socket, _, _ in socket.disconnect(close: true) }
                socket.on("conn") { socket, _, _ in socket.connection.close() }
            }
        } _: { _, port in
            try await blocking {
                let a = try RawSocketIOClient(port: port, query: "&tag=a")
                _ = try a.connect()
                try a.send("1")
                let b = try RawSocketIOClient(port: port, query: "&tag=b")
                _ = try b.connect()
                try b.send(#"2["kick"]"#)
                #expect(try b.receive() == "1")
                let c = try RawSocketIOClient(port: port, query: "&tag=c")
                _ = try c.connect()
                try c.send(#"2["close"]"#)
                #expect(try c.receive() == "1")
                let d = try RawSocketIOClient(port: port, query: "&tag=d")
                _ = try d.connect()
                try d.send(#"2["conn"]"#)
                let e = try RawSocketIOClient(port: port, query: "&tag=e")
                _ = try e.connect()
                try e.ws.sendFrame(opcode: 8, [3, 232])
                let f = try RawSocketIOClient(port: port, query: "&tag=f")
                _ = try f.connect()
                try f.send(#"2{}"#)
                let g = try RawSocketIOClient(port: port, query: "&tag=g")
                _ = try g.connect()
                // g stops answering pings: read nothing and wait for the server to give up.
                while case .text = try g.ws.receive(answerPings: false) {}
            }
            for expected in [
                "a: client namespace disconnect", "b: server namespace disconnect", "c: server namespace disconnect",
                "d: forced close", "e: transport close", "f: parse error", "g: ping timeout", "disconnecting b true",
            ] {
                #expect(await seen.wait(for: expected), "\(expected) in \(seen.all)")
            }
        }
    }

    @Test func shutdownReason() async throws {
        let seen = Recorder()
        let keep = NIOLockedValueBox<RawSocketIOClient?>(nil)
        try await withSocketIO { _ in
        } setup: { io in
            io.onConnection { socket in socket.onDisconnect { _, reason in seen.record("\(reason)") } }
        } _: { _, port in
            let client = try await blocking { try connectedClient(port: port) }
            keep.withLockedValue { $0 = client }  // the connection stays open through the shutdown
        }
        #expect(seen.all == ["server shutting down"])
        keep.withLockedValue { $0 = nil }
    }
}

/// The first socket a connection handler stored, waiting (bounded) for the handler to run: the
/// client sees the CONNECT answer just before the server's connection handlers run.
func firstSocket(_ sockets: NIOLockedValueBox<[SocketIOSocket]>) async -> SocketIOSocket? {
    for _ in 0..<1000 {
        if let socket = sockets.withLockedValue({ $0.first }) { return socket }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return nil
}
