import EngineIO
import EngineIOCore
import Foundation
import NIOCore
import NIOPosix
import SocketIO
import SocketIOCore
import TestSupport
import Testing

/// Servers that share one adapter kind: one server for the in-memory adapter, several for a
/// cluster adapter. Clients connect in-process (``LocalSocketIOClient``): no sockets.
struct ContractCluster: Sendable {
    let nodes: [SocketIOServer]
    let loop: any EventLoop

    /// A client of node `node`, connected to `/`; `rooms` are joined server-side on connection.
    func client(on node: Int, rooms: [String] = [], name: String) async throws -> (LocalSocketIOClient, String) {
        let query = "&name=\(name)&rooms=\(rooms.joined(separator: ","))"
        let client = try await LocalSocketIOClient.open(self.nodes[node].engine, on: self.loop, query: query)
        let sid = try await client.connect()
        // The connection handler's joins ran before the CONNECT answer was sent: nothing to wait for.
        return (client, sid)
    }

    func close() async {
        for node in self.nodes { await node.close() }
    }
}

/// The adapters every contract test runs against.
enum AdapterKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case inMemory

    var testDescription: String { self.rawValue }

    /// Makes the cluster, each node running the contract's server side: rooms from the query,
    /// `name` in `socket.data`, an `ask` event acked with `[name]`, and server-side listeners.
    func makeCluster(received: Recorder) async throws -> ContractCluster {
        let count: Int
        let factory: @Sendable (SocketIOAdapterContext) -> any SocketIOAdapter
        switch self {
        case .inMemory:
            count = 1
            factory = { InMemoryAdapter(context: $0) }
        }
        var nodes: [SocketIOServer] = []
        for index in 0..<count {
            var configuration = SocketIOConfiguration()
            configuration.adapterFactory = factory
            configuration.engine.pingInterval = .seconds(60)
            let io = SocketIOServer(configuration: configuration)
            io.onConnection { socket in
                let rooms = socket.handshake.query["rooms"]?.split(separator: ",").map(String.init) ?? []
                if !rooms.isEmpty { socket.join(Set(rooms)) }
                socket.data["name"] = socket.handshake.query["name"].map(JSONValue.string) ?? .null
            }
            io.onServerSideEmit("hello") { args, ack in
                received.record("node\(index) hello \(args.map(\.jsonText).joined(separator: ","))")
                ack?(.string("node\(index)"))
            }
            nodes.append(io)
        }
        return ContractCluster(nodes: nodes, loop: MultiThreadedEventLoopGroup.singleton.next())
    }
}

/// One set of tests for every adapter: what a socket.io user may rely on whichever adapter runs.
@Suite("Adapter contract", .timeLimit(.minutes(1)))
struct AdapterContractTests {
    /// Whether `client` receives `expected` next (the event's text), not something else first.
    private func expectNext(_ client: LocalSocketIOClient, _ expected: String, _ note: String) async throws {
        let text = try await client.receiveText()
        #expect(text == expected, "\(note)")
    }

    @Test(arguments: AdapterKind.allCases)
    func broadcastsReachTheSelectedSocketsOnEveryServer(_ kind: AdapterKind) async throws {
        let cluster = try await kind.makeCluster(received: Recorder())
        let last = cluster.nodes.count - 1
        let (a, _) = try await cluster.client(on: 0, rooms: ["r", "x"], name: "a")
        let (b, _) = try await cluster.client(on: last, rooms: ["r"], name: "b")
        let (c, cid) = try await cluster.client(on: last, rooms: ["r"], name: "c")
        let (d, _) = try await cluster.client(on: 0, name: "d")
        let io = cluster.nodes[0]
        io.to("r").except("x").except(cid).emit("only-b", 1)
        io.to("r").emit("room-r", .binary(ByteBuffer(bytes: [1, 2])))
        io.emit("everyone", "e")
        for (client, name) in [(a, "a"), (b, "b"), (c, "c"), (d, "d")] {
            if name == "b" { try await self.expectNext(client, #"2["only-b",1]"#, name) }
            if name != "d" {
                #expect(try await client.receiveText() == #"51-["room-r",{"_placeholder":true,"num":0}]"#, "\(name)")
                #expect(try await client.receiveBinary() == [1, 2])
            }
            try await self.expectNext(client, #"2["everyone","e"]"#, name)
        }
        // `local` reaches this server's sockets only.
        cluster.nodes[last].local.emit("local")
        cluster.nodes[0].emit("after")
        if last > 0 { try await self.expectNext(a, #"2["after"]"#, "a must not get the other server's local emit") }
        try await self.expectNext(b, #"2["local"]"#, "b")
        await cluster.close()
    }

    @Test(arguments: AdapterKind.allCases)
    func broadcastAcksCountEveryServerAndKeepWhatCameOnTimeout(_ kind: AdapterKind) async throws {
        let cluster = try await kind.makeCluster(received: Recorder())
        let last = cluster.nodes.count - 1
        let clients = [
            try await cluster.client(on: 0, rooms: ["q"], name: "a"),
            try await cluster.client(on: last, rooms: ["q"], name: "b"),
            try await cluster.client(on: last, rooms: ["q"], name: "c"),
        ]
        let io = cluster.nodes[0]
        async let complete = io.to("q").timeout(.seconds(5)).emitWithAck("question", "q?")
        for (client, _) in clients {
            let packet = try await client.receiveText()
            let id = packet.dropFirst().prefix(while: \.isNumber)
            #expect(packet == "2\(id)[\"question\",\"q?\"]")
            try await client.send("3\(id)[\"from\",2]")
        }
        let result = await complete
        #expect(result.isComplete && result.expected == 3 && result.responses == ["from", "from", "from"])
        // One client does not answer: the timeout gives what came.
        async let partial = io.to("q").timeout(.milliseconds(500)).emitWithAck("again")
        for (index, (client, _)) in clients.enumerated() {
            let packet = try await client.receiveText()
            let id = packet.dropFirst().prefix(while: \.isNumber)
            if index < 2 { try await client.send("3\(id)[\(index)]") }
        }
        let outcome = await partial
        #expect(outcome.timedOut && Set(outcome.responses) == [0, 1] && outcome.expected == 3)
        // Nobody selected: complete at once, with nothing.
        let empty = await io.to("nobody").timeout(.seconds(5)).emitWithAck("void")
        #expect(empty.isComplete && empty.responses.isEmpty && empty.expected == 0)
        await cluster.close()
    }

    @Test(arguments: AdapterKind.allCases)
    func fetchSocketsFindsSocketsEverywhereAndReachesThem(_ kind: AdapterKind) async throws {
        let cluster = try await kind.makeCluster(received: Recorder())
        let last = cluster.nodes.count - 1
        let (a, aid) = try await cluster.client(on: 0, rooms: ["f"], name: "a")
        let (b, bid) = try await cluster.client(on: last, rooms: ["f", "g"], name: "b")
        let io = cluster.nodes[0]
        let found = await io.in("f").fetchSockets()
        #expect(Set(found.map(\.id)) == [aid, bid])
        let remoteB = try #require(found.first { $0.id == bid })
        #expect(remoteB.rooms == [bid, "f", "g"])
        #expect(remoteB.data["name"] == "b")
        #expect(remoteB.handshake.query["name"] == "b")
        #expect((remoteB.local != nil) == (last == 0))
        #expect(await io.in("g").except(bid).fetchSockets().isEmpty)
        // The handle reaches the socket wherever it is.
        remoteB.emit("direct", "hi")
        try await self.expectNext(b, #"2["direct","hi"]"#, "b")
        remoteB.join("h")
        #expect(Set(await io.in("h").fetchSockets().map(\.id)) == [bid])
        // Joins, leaves and disconnects of selected sockets on every server.
        io.in("f").socketsJoin("all-f")
        #expect(Set(await io.in("all-f").fetchSockets().map(\.id)) == [aid, bid])
        io.in("f").socketsLeave("all-f")
        #expect(await io.in("all-f").fetchSockets().isEmpty)
        let rooms = await io.sockets.adapter.allRooms()
        #expect(rooms.isSuperset(of: ["f", "g", "h", aid, bid]))
        remoteB.disconnect()
        #expect(try await b.receiveText() == "1")
        #expect(Set(await io.fetchSockets().map(\.id)) == [aid])
        withExtendedLifetime(a) {}
        await cluster.close()
    }

    @Test(arguments: AdapterKind.allCases)
    func serverSideEmitsReachTheOtherServersOnly(_ kind: AdapterKind) async throws {
        let received = Recorder()
        let cluster = try await kind.makeCluster(received: received)
        let io = cluster.nodes[0]
        #expect(await io.sockets.adapter.serverCount() == cluster.nodes.count)
        try io.serverSideEmit("hello", 1, "two")
        let answers = try await io.serverSideEmitWithAck("hello", "ack?", timeout: .seconds(5))
        let others = (1..<cluster.nodes.count).map { "node\($0)" }
        #expect(!answers.timedOut && Set(answers.responses.compactMap(\.stringValue)) == Set(others))
        for other in others {
            #expect(await received.wait(for: "\(other) hello 1,\"two\""))
            #expect(await received.wait(for: "\(other) hello \"ack?\""))
        }
        #expect(!received.all.contains { $0.hasPrefix("node0 ") }, "the sender's own listeners are not called")
        #expect(throws: SocketIOReservedEventError.self) { try io.serverSideEmit("connect") }
        await cluster.close()
    }
}
