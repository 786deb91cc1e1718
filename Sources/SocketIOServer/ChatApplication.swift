import NIOConcurrencyHelpers
import NIOCore
import SocketIO
import SocketIOCore

/// The chat app of the default profile (the page is `Resources/chat.html`).
///
/// Protocol, all on namespace `/`:
/// - connect with `auth: {name}`: 1–32 characters, refused with `pick a nickname` otherwise. A
///   name is held by one connection at a time: a newer connection with the same name takes it
///   over and the older socket is disconnected (so a client that reconnects after a network blip
///   is never locked out while its old session waits for its ping timeout).
/// - `join` room → ack `{room, members, history}` and `presence {room, members}` to the room.
/// - `leave` room → ack `true` and `presence` to the room.
/// - `message {room, text}` → `message {id, room, from, text, ts}` to the room, sender included;
///   ack with the message. The last ``historyLimit`` messages of each room are kept in memory
///   and replayed to whoever joins.
/// - `typing {room, typing}` → `typing {room, name, typing}` to the rest of the room. Not volatile:
///   the page sends only changes (started, stopped), so a dropped one would never be repaired.
/// - `dm {to, text}` → `dm {from, to, text, ts}` to the recipient and back to the sender; ack
///   `{ok}` or `{ok: false, error}`.
/// - `users` → ack with every connected name.
final class ChatApplication: Sendable {
    /// Messages kept per room.
    static let historyLimit = 50
    /// Longest accepted message text.
    static let maxTextLength = 2000

    private struct State {
        /// Who holds each name: the socket id.
        var names: [String: String] = [:]
        var sockets: [String: SocketIOSocket] = [:]
        var members: [String: Set<String>] = [:]
        var history: [String: [JSONValue]] = [:]
        var nextID = 0
    }

    private let state = NIOLockedValueBox(State())

    static func install(on io: SocketIOServer) {
        let chat = ChatApplication()
        io.use { socket in
            let raw = socket.handshake.auth["name"]?.stringValue ?? ""
            let name = String(raw.filter { !$0.isNewline }).trimmingSpaces
            guard !name.isEmpty, name.count <= 32 else {
                throw SocketIOConnectError("pick a nickname", data: ["field": "name"])
            }
            socket.data["name"] = .string(name)
        }
        io.onConnection { socket in chat.connected(socket) }
    }

    private func connected(_ socket: SocketIOSocket) {
        let name = socket.data["name"]?.stringValue ?? "?"
        let previous = self.state.withLockedValue { state -> SocketIOSocket? in
            let previous = state.names[name].flatMap { state.sockets[$0] }
            state.names[name] = socket.id
            state.sockets[socket.id] = socket
            return previous
        }
        // The newer connection takes the name over.
        previous?.disconnect()
        socket.join("user:" + name)
        socket.on("users") { _, _, ack in
            let names = self.state.withLockedValue { $0.names.keys.sorted() }
            ack?(.array(names.map { .string($0) }))
        }
        socket.on("join") { socket, args, ack in
            guard let room = Self.roomName(args.first) else { return }
            socket.join("room:" + room)
            let (members, history) = self.state.withLockedValue { state in
                state.members[room, default: []].insert(name)
                return (state.members[room]!.sorted(), state.history[room] ?? [])
            }
            let presence: JSONValue = ["room": .string(room), "members": .array(members.map { .string($0) })]
            socket.namespace.to("room:" + room).emit("presence", presence)
            ack?(["room": .string(room), "members": .array(members.map { .string($0) }), "history": .array(history)])
        }
        socket.on("leave") { socket, args, ack in
            guard let room = Self.roomName(args.first) else { return }
            socket.leave("room:" + room)
            self.left(room: room, name: name, from: socket)
            ack?(true)
        }
        socket.on("message") { socket, args, ack in
            guard let room = Self.roomName(args.first?["room"]), socket.rooms.contains("room:" + room),
                let text = args.first?["text"]?.stringValue, !text.isEmpty, text.count <= Self.maxTextLength
            else { return }
            let message = self.state.withLockedValue { state -> JSONValue in
                state.nextID += 1
                let message: JSONValue = [
                    "id": .number(JSONNumber(state.nextID)), "room": .string(room), "from": .string(name),
                    "text": .string(text), "ts": .number(JSONNumber(nowMilliseconds())),
                ]
                state.history[room, default: []].append(message)
                if state.history[room]!.count > Self.historyLimit { state.history[room]!.removeFirst() }
                return message
            }
            socket.namespace.to("room:" + room).emit("message", message)
            ack?(message)
        }
        socket.on("typing") { socket, args, _ in
            guard let room = Self.roomName(args.first?["room"]), socket.rooms.contains("room:" + room) else { return }
            let typing = args.first?["typing"]?.boolValue ?? false
            socket.to("room:" + room).emit(
                "typing",
                ["room": .string(room), "name": .string(name), "typing": .bool(typing)]
            )
        }
        socket.on("dm") { socket, args, ack in
            guard let to = args.first?["to"]?.stringValue, let text = args.first?["text"]?.stringValue, !text.isEmpty,
                text.count <= Self.maxTextLength
            else { return }
            guard self.state.withLockedValue({ $0.names[to] != nil }) else {
                ack?(["ok": false, "error": "no such user"])
                return
            }
            let dm: JSONValue = [
                "from": .string(name), "to": .string(to), "text": .string(text),
                "ts": .number(JSONNumber(nowMilliseconds())),
            ]
            socket.namespace.to("user:" + to, "user:" + name).emit("dm", dm)
            ack?(["ok": true])
        }
        socket.onDisconnecting { socket, _ in
            for room in socket.rooms where room.hasPrefix("room:") {
                self.left(room: String(room.dropFirst(5)), name: name, from: socket)
            }
        }
        socket.onDisconnect { socket, _ in
            self.state.withLockedValue { state in
                state.sockets[socket.id] = nil
                // Only the current holder releases the name (not a socket it replaced).
                if state.names[name] == socket.id { state.names[name] = nil }
            }
        }
    }

    private func left(room: String, name: String, from socket: SocketIOSocket) {
        let members = self.state.withLockedValue { state -> [String] in
            state.members[room]?.remove(name)
            if state.members[room]?.isEmpty == true { state.members[room] = nil }
            return (state.members[room] ?? []).sorted()
        }
        let presence: JSONValue = ["room": .string(room), "members": .array(members.map { .string($0) })]
        socket.to("room:" + room).emit("presence", presence)
        socket.to("room:" + room).emit("typing", ["room": .string(room), "name": .string(name), "typing": false])
    }

    /// A room name: 1–40 characters without control characters.
    static func roomName(_ value: JSONValue?) -> String? {
        guard let raw = value?.stringValue else { return nil }
        let name = raw.trimmingSpaces
        guard !name.isEmpty, name.count <= 40, !name.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            return nil
        }
        return name
    }
}

extension String {
    /// The string without leading and trailing spaces.
    var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
