import EngineIO
import NIOCore
import SocketIO
import SocketIOCore
import TestSupport
import Testing

// The README's chat server, compiled and exercised here so that it cannot rot.

func makeChatServer() -> SocketIOServer {
    let io = SocketIOServer()
    // Connection middleware: every client must pick a nickname.
    io.use { socket in
        guard let name = socket.handshake.auth["name"]?.stringValue, !name.isEmpty else {
            throw SocketIOConnectError("pick a nickname", data: ["field": "name"])
        }
        socket.data["name"] = .string(name)
    }
    io.onConnection { socket in
        let name = socket.data["name"]?.stringValue ?? "anonymous"
        socket.on("join") { socket, args, ack in
            guard let room = args.first?.stringValue else { return }
            socket.join(room)
            socket.to(room).emit("joined", ["room": .string(room), "name": .string(name)])
            ack?(true)
        }
        socket.on("say") { socket, args, _ in
            guard let room = args.first?.stringValue, let text = args.dropFirst().first?.stringValue else { return }
            let message: JSONValue = ["room": .string(room), "name": .string(name), "text": .string(text)]
            socket.namespace.to(room).emit("said", message)  // the sender sees it too
        }
        socket.onDisconnecting { socket, _ in
            for room in socket.rooms where room != socket.id {
                socket.to(room).emit("left", ["room": .string(room), "name": .string(name)])
            }
        }
    }
    return io
}

@Suite("README chat example", .timeLimit(.minutes(1)))
struct ReadmeChatExampleTests {
    @Test func chatFlow() async throws {
        try await withHTTPServer([makeChatServer().engine]) { port in
            try await blocking {
                let anonymous = try RawSocketIOClient(port: port)
                #expect(try anonymous.connect() == #"44{"message":"pick a nickname","data":{"field":"name"}}"#)
                let alice = try RawSocketIOClient(port: port)
                #expect(try alice.connect(auth: #"{"name":"alice"}"#).hasPrefix("40{"))
                let bob = try RawSocketIOClient(port: port)
                #expect(try bob.connect(auth: #"{"name":"bob"}"#).hasPrefix("40{"))
                try alice.send(#"21["join","lobby"]"#)
                #expect(try alice.receive() == "31[true]")
                try bob.send(#"22["join","lobby"]"#)
                #expect(try bob.receive() == "32[true]")
                #expect(try alice.receive() == #"2["joined",{"room":"lobby","name":"bob"}]"#)
                try alice.send(#"2["say","lobby","hi"]"#)
                #expect(try alice.receive() == #"2["said",{"room":"lobby","name":"alice","text":"hi"}]"#)
                #expect(try bob.receive() == #"2["said",{"room":"lobby","name":"alice","text":"hi"}]"#)
                try bob.send("1")
                #expect(try alice.receive() == #"2["left",{"room":"lobby","name":"bob"}]"#)
            }
        }
    }
}
