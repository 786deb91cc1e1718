public import SocketIOCore

/// A socket found by `fetchSockets`, on this server or another one of the cluster (Node's
/// `RemoteSocket`): what is known of it, and the operations that reach it wherever it is
/// (they go through the namespace's adapter, as a broadcast to the socket's own room).
public struct SocketIORemoteSocket: Sendable {
    /// The socket id.
    public let id: String
    /// Its handshake (for a socket of another server, as that server sent it).
    public let handshake: SocketIOHandshake
    /// Its rooms (its own id included).
    public let rooms: Set<String>
    /// Its `socket.data`, as a value.
    public let data: JSONValue
    /// The socket itself, when it is connected to this server.
    public let local: SocketIOSocket?
    let namespace: SocketIONamespace

    /// A snapshot of a local socket.
    init(local socket: SocketIOSocket) {
        self.id = socket.id
        self.handshake = socket.handshake
        self.rooms = socket.rooms
        self.data = socket.data.value
        self.local = socket
        self.namespace = socket.namespace
    }

    /// A socket another server described.
    init(id: String, handshake: SocketIOHandshake, rooms: Set<String>, data: JSONValue, namespace: SocketIONamespace) {
        self.id = id
        self.handshake = handshake
        self.rooms = rooms
        self.data = data
        self.local = nil
        self.namespace = namespace
    }

    /// Sends it an event.
    public func emit(_ event: String, _ args: JSONValue...) {
        self.namespace.to(self.id).emit(event, arguments: args)
    }

    /// Makes it join rooms.
    public func join(_ rooms: String...) {
        self.namespace.adapter.addSockets(BroadcastOptions(rooms: [self.id]), rooms: Set(rooms))
    }

    /// Makes it leave rooms.
    public func leave(_ rooms: String...) {
        self.namespace.adapter.delSockets(BroadcastOptions(rooms: [self.id]), rooms: Set(rooms))
    }

    /// Disconnects it (`close`: its whole connection).
    public func disconnect(close: Bool = false) {
        self.namespace.adapter.disconnectSockets(BroadcastOptions(rooms: [self.id]), close: close)
    }
}
