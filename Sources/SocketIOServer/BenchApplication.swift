import SocketIO
import SocketIOCore

/// The benchmark app (`--profile bench`), on namespace `/`, for any Socket.IO load generator:
/// - `echo` (any arguments) is acknowledged with exactly those arguments;
/// - `join(room)` joins the room and acknowledges `true`;
/// - `broadcast(room, payload)` emits `bcast(payload)` to the room, sender included, then
///   acknowledges `true`.
enum BenchApplication {
    static func install(on io: SocketIOServer) {
        io.onConnection { socket in
            socket.on("echo") { _, args, ack in ack?.send(arguments: args) }
            socket.on("join") { socket, args, ack in
                guard let room = args.first?.stringValue else { return }
                socket.join(room)
                ack?(true)
            }
            socket.on("broadcast") { socket, args, ack in
                guard let room = args.first?.stringValue else { return }
                socket.namespace.to(room).emit("bcast", args.dropFirst().first ?? .null)
                ack?(true)
            }
        }
    }
}
