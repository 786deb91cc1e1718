import EngineIOCore
import NIOConcurrencyHelpers
public import NIOCore
public import SocketIOCore

/// The answers to a broadcast `emitWithAck`.
public struct BroadcastAckResult: Sendable {
    /// Each responding socket's answer, by socket id.
    public var responses: [String: [JSONValue]]
    /// The sockets that did not answer before the timeout (empty when all did).
    public var missing: [String]

    /// Whether every receiver answered.
    public var isComplete: Bool { self.missing.isEmpty }
}

/// Where a namespace keeps room memberships and how it reaches sockets for broadcasts.
///
/// The in-memory adapter serves one process. A cluster adapter (Redis) implements the same
/// protocol and forwards broadcasts and queries to the other servers, using
/// ``BroadcastOptions`` (plain, `Codable` data) on the wire. Membership changes and broadcasts
/// are synchronous (fire and forget, like Node's adapter); queries that may cross servers are
/// `async`.
public protocol SocketIOAdapter: Sendable {
    /// A socket joined the namespace (it is put in the room named by its id).
    func add(_ socket: SocketIOSocket)
    /// A socket left the namespace and all its rooms.
    func remove(_ socket: SocketIOSocket)
    /// Adds a socket to rooms.
    func join(_ socketID: String, rooms: Set<String>)
    /// Removes a socket from a room.
    func leave(_ socketID: String, room: String)
    /// The rooms of a local socket.
    func rooms(of socketID: String) -> Set<String>
    /// Sends an encoded packet to the sockets `options` select.
    func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions)
    /// Sends an event to the selected sockets and collects their acks until all answered or
    /// `timeout` passed.
    func broadcastWithAck(
        _ packet: SocketIOPacket,
        options: BroadcastOptions,
        timeout: TimeAmount
    ) async
        -> BroadcastAckResult
    /// The selected sockets.
    func fetchSockets(_ options: BroadcastOptions) async -> [SocketIOSocket]
    /// Makes the selected sockets join `rooms`.
    func addSockets(_ options: BroadcastOptions, rooms: Set<String>)
    /// Makes the selected sockets leave `rooms`.
    func delSockets(_ options: BroadcastOptions, rooms: Set<String>)
    /// Disconnects the selected sockets.
    func disconnectSockets(_ options: BroadcastOptions, close: Bool)
    /// Every room with at least one member.
    func allRooms() async -> Set<String>
}

/// The single-process adapter: a ``RoomIndex`` and the namespace's local sockets, behind one lock.
///
/// A broadcast takes the lock only to select its receivers; the packet is encoded once outside it
/// and the same buffers go to every receiver, each on its own event loop.
public final class InMemoryAdapter: SocketIOAdapter {
    private struct State {
        var index = RoomIndex()
        var sockets: [HashedKey: SocketIOSocket] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Creates an empty adapter.
    public init() {}

    /// Adds a socket in its own room.
    public func add(_ socket: SocketIOSocket) {
        self.state.withLockedValue {
            let key = HashedKey(socket.id)
            $0.sockets[key] = socket
            $0.index.join(key, CollectionOfOne(key))
        }
    }

    /// Removes a socket from everything.
    public func remove(_ socket: SocketIOSocket) {
        self.state.withLockedValue {
            let key = HashedKey(socket.id)
            $0.sockets[key] = nil
            $0.index.remove(key)
        }
    }

    /// Adds a socket to rooms.
    public func join(_ socketID: String, rooms: Set<String>) {
        self.state.withLockedValue {
            guard $0.sockets[HashedKey(socketID)] != nil else { return }
            $0.index.join(socketID, rooms)
        }
    }

    /// Removes a socket from a room.
    public func leave(_ socketID: String, room: String) {
        self.state.withLockedValue { $0.index.leave(socketID, room) }
    }

    /// The rooms of a socket.
    public func rooms(of socketID: String) -> Set<String> {
        self.state.withLockedValue { $0.index.rooms(of: socketID) ?? [] }
    }

    private func select(_ options: BroadcastOptions) -> [SocketIOSocket] {
        self.state.withLockedValue { state in
            state.index.selectKeys(options).compactMap { state.sockets[$0] }
        }
    }

    /// Encodes once, then hands the same buffers to each selected socket.
    public func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) {
        let receivers = self.select(options)
        guard !receivers.isEmpty else { return }
        let encoded = OutgoingPacket(packet)
        for socket in receivers { socket.send(encoded, volatile: options.volatile, compress: options.compress) }
    }

    /// Encodes once with one ack id for all receivers, and collects the answers.
    public func broadcastWithAck(
        _ packet: SocketIOPacket,
        options: BroadcastOptions,
        timeout: TimeAmount
    ) async
        -> BroadcastAckResult
    {
        let receivers = self.select(options)
        return await BroadcastAckCollector.collect(
            packet: packet,
            receivers: receivers,
            options: options,
            timeout: timeout
        )
    }

    /// The selected local sockets.
    public func fetchSockets(_ options: BroadcastOptions) async -> [SocketIOSocket] {
        self.select(options)
    }

    /// Makes the selected sockets join rooms.
    public func addSockets(_ options: BroadcastOptions, rooms: Set<String>) {
        self.state.withLockedValue { state in
            for id in state.index.select(options) { state.index.join(id, rooms) }
        }
    }

    /// Makes the selected sockets leave rooms.
    public func delSockets(_ options: BroadcastOptions, rooms: Set<String>) {
        self.state.withLockedValue { state in
            for id in state.index.select(options) {
                for room in rooms { state.index.leave(id, room) }
            }
        }
    }

    /// Disconnects the selected sockets.
    public func disconnectSockets(_ options: BroadcastOptions, close: Bool) {
        for socket in self.select(options) { socket.disconnect(close: close) }
    }

    /// Every room with members.
    public func allRooms() async -> Set<String> {
        self.state.withLockedValue { $0.index.rooms }
    }
}

/// A packet encoded once for many receivers: the text and the attachments.
public struct OutgoingPacket: Sendable {
    /// The Engine.IO message in wire form (`4` then the Socket.IO text), shared by every receiver.
    public let frame: ByteBuffer
    /// The binary messages that follow it.
    public let attachments: [ByteBuffer]
    /// The event name, for `onAnyOutgoing` listeners.
    public let packet: SocketIOPacket

    /// Encodes `packet`.
    public init(_ packet: SocketIOPacket) {
        // Headroom for a WebSocket frame header, written in place when only one receiver holds it.
        let encoded = packet.encode(prefix: UInt8(ascii: "4"), headroom: 10)
        self.frame = encoded.text
        self.attachments = encoded.attachments
        self.packet = packet
    }
}
