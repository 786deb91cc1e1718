import NIOCore
import SocketIO
import SocketIOCore

/// The test contract of the real-client harness (`shared/realclients/README.md`, "Test
/// contract"), so that the official socket.io client's suite can run against this server.
enum InteropApplication {
    static func roomName(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        return value.stringValue ?? value.jsonText
    }

    static func install(on io: SocketIOServer) {
        io.onConnection { socket in
            socket.emit("welcome", ["sid": .string(socket.id), "nsp": "/", "auth": socket.handshake.auth])
            socket.on("echo") { socket, args, _ in socket.emit("echo", arguments: args) }
            socket.on("ack") { _, args, ack in ack?.send(arguments: args) }
            socket.on("join") { socket, args, ack in
                let room = roomName(args.first)
                socket.join(room)
                ack?(.string("joined:" + room))
            }
            socket.on("leave") { socket, args, ack in
                let room = roomName(args.first)
                socket.leave(room)
                ack?(.string("left:" + room))
            }
            socket.on("to-room") { socket, args, ack in
                let room = roomName(args.first)
                socket.to(room).emit("room-msg", ["room": .string(room), "payload": args.dropFirst().first ?? .null])
                ack?(true)
            }
            socket.on("broadcast") { socket, args, ack in
                socket.broadcast.emit("broadcast", arguments: Array(args.prefix(1)))
                ack?(true)
            }
            socket.on("server-ack") { socket, args, _ in
                let payload = args.first ?? .null
                Task {
                    do {
                        let answer = try await socket.emitWithAck("server-ack", payload, timeout: .seconds(5))
                        let value: JSONValue = answer.count == 1 ? answer[0] : .array(answer)
                        socket.emit("server-ack-result", ["ok": true, "answer": value])
                    } catch {
                        socket.emit("server-ack-result", ["ok": false, "error": .string("\(error)")])
                    }
                }
            }
            socket.on("disconnect-me") { socket, _, _ in socket.disconnect() }
        }
        let chat = io.of("/chat")
        chat.onConnection { socket in
            socket.emit("welcome", ["sid": .string(socket.id), "nsp": "/chat"])
            socket.on("message") { socket, args, ack in
                let message = args.first ?? .null
                let user: JSONValue
                let text: JSONValue
                if case .object(let object) = message {
                    user = object["user"] ?? "anonymous"
                    text = object["text"] ?? ""
                } else {
                    user = "anonymous"
                    text = message
                }
                socket.namespace.emit(
                    "message",
                    ["user": user, "text": text, "ts": .number(JSONNumber(nowMilliseconds()))]
                )
                ack?(true)
            }
        }
        io.of("/private").use { socket in
            guard socket.handshake.auth["token"]?.stringValue == "letmein" else {
                throw SocketIOConnectError("unauthorized", data: ["hint": "auth.token"])
            }
        }
        // Beyond the contract: any number of namespaces /ns-N on one connection, each echoing.
        let dynamic = try? io.dynamicNamespace(pattern: "/ns-[0-9]+")
        dynamic?.onConnection { socket in
            socket.on("echo") { socket, args, ack in
                let answer = [JSONValue.string(socket.namespace.name)] + args
                if let ack { ack.send(arguments: answer) } else { socket.emit("echo", arguments: answer) }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Milliseconds since the Unix epoch.
func nowMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int(now.tv_sec) * 1000 + Int(now.tv_nsec) / 1_000_000
}
