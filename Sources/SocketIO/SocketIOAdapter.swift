import EngineIO
import EngineIOCore
import NIOConcurrencyHelpers
public import NIOCore
public import SocketIOCore

/// Where a namespace keeps room memberships, and how its broadcasts and queries reach sockets:
/// on this server only (``InMemoryAdapter``), or across a cluster (the Redis adapters), with the
/// operations of Node's `ClusterAdapter` (socket.io-adapter 2.5).
///
/// One adapter serves one namespace; the server makes it with
/// ``SocketIOConfiguration/adapterFactory`` when the namespace is created (a dynamic namespace's
/// children each get one; the dynamic parent, which has no sockets, gets none of its own) and
/// calls ``start()`` then, and ``close()`` when the server closes.
///
/// Membership changes of local sockets are synchronous. Broadcasts and membership changes of
/// selected sockets are fire and forget, as in Node. Queries that may cross servers are
/// `async`; a cluster adapter returns what it has when its request times out.
public protocol SocketIOAdapter: Sendable {
    /// Starts the adapter (a cluster adapter subscribes to its channels). Called once, when the
    /// namespace is created; the namespace works meanwhile (a broadcast made before it finished
    /// reaches the local sockets).
    func start() async throws
    /// Stops the adapter (a cluster adapter leaves the cluster). Called when the server closes.
    func close() async

    /// A socket joined the namespace (it is put in the room named by its id).
    func add(_ socket: SocketIOSocket)
    /// A socket left the namespace and all its rooms.
    func remove(_ socket: SocketIOSocket)
    /// Adds a local socket to rooms.
    func join(_ socketID: String, rooms: Set<String>)
    /// Removes a local socket from a room.
    func leave(_ socketID: String, room: String)
    /// The rooms of a local socket.
    func rooms(of socketID: String) -> Set<String>

    /// Sends an event packet to the sockets `options` select (on every server unless
    /// `options.local`).
    func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions)
    /// Sends an event packet that expects acks to the selected sockets: each server reports how
    /// many clients it sent it to (``BroadcastAckCallbacks/clientCount``), then each answer
    /// arrives (``BroadcastAckCallbacks/ack``). The caller aggregates (see
    /// ``BroadcastOperator/emitWithAck(_:arguments:)``); `timeout` bounds how long local
    /// receivers keep their pending ack.
    func broadcastWithAck(
        _ packet: SocketIOPacket,
        options: BroadcastOptions,
        timeout: TimeAmount,
        callbacks: BroadcastAckCallbacks
    )
    /// The selected sockets, with what is known of each (on every server unless
    /// `options.local`).
    func fetchSockets(_ options: BroadcastOptions) async -> [SocketIORemoteSocket]
    /// Makes the selected sockets join `rooms`.
    func addSockets(_ options: BroadcastOptions, rooms: Set<String>)
    /// Makes the selected sockets leave `rooms`.
    func delSockets(_ options: BroadcastOptions, rooms: Set<String>)
    /// Disconnects the selected sockets (`close`: their whole connection).
    func disconnectSockets(_ options: BroadcastOptions, close: Bool)
    /// Every room with at least one member, on every server.
    func allRooms() async -> Set<String>
    /// Sends an event to the other servers' namespaces of the same name (`arguments` starts
    /// with the event name).
    func serverSideEmit(_ arguments: [JSONValue])
    /// Sends an event to the other servers and collects one answer from each.
    func serverSideEmitWithAck(_ arguments: [JSONValue], timeout: TimeAmount) async -> ServerSideEmitResult
    /// The number of servers of the cluster that serve this namespace, this one included.
    func serverCount() async -> Int
}

extension SocketIOAdapter {
    /// Nothing to start.
    public func start() async throws {}
    /// Nothing to stop.
    public func close() async {}
    /// No other server to tell.
    public func serverSideEmit(_ arguments: [JSONValue]) {}
    /// No other server to answer.
    public func serverSideEmitWithAck(_ arguments: [JSONValue], timeout: TimeAmount) async -> ServerSideEmitResult {
        ServerSideEmitResult(responses: [], timedOut: false)
    }
    /// This server alone.
    public func serverCount() async -> Int { 1 }
}

/// What an adapter is told about its namespace when it is made.
public struct SocketIOAdapterContext: Sendable {
    /// The namespace name, such as `/` or `/chat`.
    public let namespace: String
    /// The server's ack timeout default (``SocketIOConfiguration/defaultAckTimeout``).
    public let defaultAckTimeout: TimeAmount
    /// Hands an event that another server sent with `serverSideEmit` to this namespace's
    /// listeners (``SocketIONamespace/onServerSideEmit(_:_:)``); `ack` is set when the sender
    /// waits for an answer.
    public let serverSideEmitReceived: @Sendable ([JSONValue], (@Sendable (JSONValue) -> Void)?) -> Void

    /// Creates a context (the server makes one per namespace; tests and tools may too).
    public init(
        namespace: String,
        defaultAckTimeout: TimeAmount = .seconds(30),
        serverSideEmitReceived: @escaping @Sendable ([JSONValue], (@Sendable (JSONValue) -> Void)?) -> Void = { _, _ in
        }
    ) {
        self.namespace = namespace
        self.defaultAckTimeout = defaultAckTimeout
        self.serverSideEmitReceived = serverSideEmitReceived
    }
}

/// How a broadcast with acks reports to its caller.
public struct BroadcastAckCallbacks: Sendable {
    /// A server sent the packet to `count` clients; `localReceivers` are their ids when the
    /// server is this one (called once per server).
    public var clientCount: @Sendable (_ count: Int, _ localReceivers: [String]?) -> Void
    /// A client answered.
    public var ack: @Sendable (SocketIOAckResponse) -> Void

    /// Creates the callbacks.
    public init(
        clientCount: @escaping @Sendable (_ count: Int, _ localReceivers: [String]?) -> Void,
        ack: @escaping @Sendable (SocketIOAckResponse) -> Void
    ) {
        self.clientCount = clientCount
        self.ack = ack
    }
}

/// One client's answer to a broadcast.
public struct SocketIOAckResponse: Hashable, Sendable {
    /// The answering socket, when it is on this server (Node's cluster protocol does not say
    /// which remote socket answered).
    public var socketID: String?
    /// The answer's arguments (from another server: its first argument only, as Node forwards).
    public var arguments: [JSONValue]

    /// Creates a response.
    public init(socketID: String?, arguments: [JSONValue]) {
        self.socketID = socketID
        self.arguments = arguments
    }
}

/// The answers to a broadcast `emitWithAck` (Node resolves with the first argument of each
/// answer; the same is in ``responses``, with more detail in ``answers``).
public struct BroadcastAckResult: Sendable {
    /// Every answer, in the order they arrived.
    public var answers: [SocketIOAckResponse]
    /// How many clients the packet was sent to, once every server reported (`nil` when one did
    /// not report before the timeout).
    public var expected: Int?
    /// Whether the timeout passed before every expected answer arrived.
    public var timedOut: Bool
    /// The receivers on this server that did not answer.
    public var missingLocal: [String]

    /// The first argument of each answer (`null` for an answer without one), as Node gives them.
    public var responses: [JSONValue] { self.answers.map { $0.arguments.first ?? .null } }

    /// Whether every receiver answered.
    public var isComplete: Bool { !self.timedOut }

    /// Creates a result.
    public init(answers: [SocketIOAckResponse], expected: Int?, timedOut: Bool, missingLocal: [String]) {
        self.answers = answers
        self.expected = expected
        self.timedOut = timedOut
        self.missingLocal = missingLocal
    }
}

/// The answers of the other servers to a `serverSideEmit` with an ack.
public struct ServerSideEmitResult: Sendable {
    /// One answer per server that answered, in the order they arrived.
    public var responses: [JSONValue]
    /// Whether the timeout passed before every other server answered.
    public var timedOut: Bool

    /// Creates a result.
    public init(responses: [JSONValue], timedOut: Bool) {
        self.responses = responses
        self.timedOut = timedOut
    }
}

/// The single-process adapter: a ``RoomIndex`` and the namespace's local sockets, behind one lock.
///
/// A broadcast takes the lock only to select its receivers; the packet is encoded once outside it
/// and the same buffers go to every receiver, each on its own event loop. Cluster adapters keep
/// one for their local side and use its `local…` methods.
public final class InMemoryAdapter: SocketIOAdapter {
    private struct State {
        var index = RoomIndex()
        var sockets: [HashedKey: SocketIOSocket] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Creates an empty adapter.
    public init() {}

    /// Creates an empty adapter for a namespace (the context is not needed on one server).
    public convenience init(context: SocketIOAdapterContext) {
        self.init()
    }

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

    /// The local sockets `options` select.
    public func localSockets(_ options: BroadcastOptions) -> [SocketIOSocket] {
        self.state.withLockedValue { state in
            state.index.selectKeys(options).compactMap { state.sockets[$0] }
        }
    }

    /// The local socket with id `id`, if any.
    public func localSocket(id: String) -> SocketIOSocket? {
        self.state.withLockedValue { $0.sockets[HashedKey(id)] }
    }

    /// Encodes once, then hands the same buffers to each selected socket.
    public func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) {
        let receivers = self.localSockets(options)
        guard !receivers.isEmpty else { return }
        let encoded = OutgoingPacket(packet)
        for socket in receivers { socket.send(encoded, volatile: options.volatile, compress: options.compress) }
    }

    /// Encodes once with one ack id for all receivers; reports the count, then each answer.
    public func broadcastWithAck(
        _ packet: SocketIOPacket,
        options: BroadcastOptions,
        timeout: TimeAmount,
        callbacks: BroadcastAckCallbacks
    ) {
        let receivers = self.localSockets(options)
        callbacks.clientCount(receivers.count, receivers.map(\.id))
        LocalBroadcastAck.send(packet, to: receivers, options: options, timeout: timeout, ack: callbacks.ack)
    }

    /// The selected local sockets.
    public func fetchSockets(_ options: BroadcastOptions) async -> [SocketIORemoteSocket] {
        self.localSockets(options).map(SocketIORemoteSocket.init(local:))
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
        for socket in self.localSockets(options) { socket.disconnect(close: close) }
    }

    /// Every room with members.
    public func allRooms() async -> Set<String> {
        self.localRooms()
    }

    /// Every room with local members.
    public func localRooms() -> Set<String> {
        self.state.withLockedValue { $0.index.rooms }
    }
}

/// The local half of a broadcast with acks: one ack id for every receiver, the same encoded
/// buffers to each, each answer reported as it arrives, and the receivers' pending acks dropped
/// at the timeout by one timer.
enum LocalBroadcastAck {
    static func send(
        _ packet: SocketIOPacket,
        to receivers: [SocketIOSocket],
        options: BroadcastOptions,
        timeout: TimeAmount,
        ack: @escaping @Sendable (SocketIOAckResponse) -> Void
    ) {
        guard let first = receivers.first else { return }
        let ackID = first.namespace.nextAckID()
        var packet = packet
        packet.ackID = ackID
        let encoded = OutgoingPacket(packet)
        let state = NIOLockedValueBox(Pending(waiting: Set(receivers.map(\.id))))
        for socket in receivers {
            let registered = socket.registerAck(id: ackID, timeout: nil) { result in
                let timer = state.withLockedValue { $0.answered(socket.id) }
                timer?.cancel()
                if case .success(let arguments) = result {
                    ack(SocketIOAckResponse(socketID: socket.id, arguments: arguments))
                }
            }
            if registered { socket.send(encoded, volatile: options.volatile, compress: options.compress) }
        }
        // One timer for all receivers (a timer per receiver would cost a heap entry each),
        // cancelled once every receiver answered or left.
        let timer = first.engine.eventLoop.scheduleTask(in: timeout) {
            let missing = state.withLockedValue { $0.waiting }
            for socket in receivers where missing.contains(socket.id) {
                socket.completeAck(id: ackID, .failure(.timeout))
            }
        }
        if state.withLockedValue({ $0.armed(timer) }) { timer.cancel() }
    }

    /// The receivers still waited for, and the timer once armed.
    private struct Pending {
        var waiting: Set<String>
        var timer: Scheduled<Void>?

        /// `socket` answered or left; returns the timer to cancel when none is left.
        mutating func answered(_ socket: String) -> Scheduled<Void>? {
            self.waiting.remove(socket)
            return self.waiting.isEmpty ? self.timer : nil
        }

        /// Keeps the timer; returns whether it is already unneeded.
        mutating func armed(_ timer: Scheduled<Void>) -> Bool {
            self.timer = timer
            return self.waiting.isEmpty
        }
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
