public import EngineIO
import EngineIOCore
import NIOConcurrencyHelpers
public import NIOCore
public import SocketIOCore
import Synchronization

/// Handles an event: the socket, the arguments after the event name, and the ack callback when
/// the client asked for an answer. Runs on the socket's event loop; start a `Task` for slow work.
public typealias SocketIOEventHandler = @Sendable (SocketIOSocket, [JSONValue], SocketIOAck?) -> Void

/// One client's membership of one namespace (Node's `Socket`).
///
/// Thread-safe: emits and room changes may come from any task. Incoming events are delivered on
/// the event loop of the client's connection, in order.
public final class SocketIOSocket: Sendable, LoopTimerTarget {
    /// The socket id (also the name of its own room).
    public let id: String
    /// The namespace.
    public let namespace: SocketIONamespace
    /// The connection's handshake, as middleware saw it.
    public let handshake: SocketIOHandshake
    /// Free-form per-socket data for the application.
    public let data = SocketIOUserData()
    let engine: EngineIOSocket
    private let state = Mutex(State())

    struct PendingAck {
        var complete: @Sendable (Result<[JSONValue], SocketIOAckError>) -> Void
        /// Armed on the connection's loop (see ``SocketIOSocket/registerAck``).
        var timer: LoopTimer?
    }

    private struct State {
        /// Listeners per event, in the order they were added (a lone one without an array: one
        /// allocation per event name, as most sockets have).
        var listeners: [String: EventListeners] = [:]
        var anyHandlers: [Registered<@Sendable (SocketIOSocket, String, [JSONValue]) -> Void>] = []
        var anyOutgoing: [Registered<@Sendable (SocketIOSocket, String, [JSONValue]) -> Void>] = []
        var middlewares: [@Sendable (SocketIOSocket, String, [JSONValue]) throws -> Void] = []
        var disconnecting: [Registered<@Sendable (SocketIOSocket, SocketIODisconnectReason) -> Void>] = []
        var disconnected: [Registered<@Sendable (SocketIOSocket, SocketIODisconnectReason) -> Void>] = []
        var pendingAcks: [UInt64: PendingAck] = [:]
        var connected = false

        /// Removes the event listeners of `name` that `remove` selects; returns them.
        mutating func removeListeners(
            of name: String,
            where remove: (EventHandlerBox) -> Bool
        ) -> [EventHandlerBox] {
            guard let list = self.listeners[name]?.all else { return [] }
            let removed = list.filter(remove)
            guard !removed.isEmpty else { return [] }
            self.listeners[name] = EventListeners(list.filter { !remove($0) })
            return removed
        }
    }

    init(id: String, namespace: SocketIONamespace, handshake: SocketIOHandshake, engine: EngineIOSocket) {
        self.id = id
        self.namespace = namespace
        self.handshake = handshake
        self.engine = engine
    }

    /// The underlying Engine.IO connection (Node's `socket.conn`); closing it disconnects every
    /// socket of the connection with reason `forced close`.
    public var connection: EngineIOSocket { self.engine }

    /// Whether the socket is connected to its namespace.
    public var connected: Bool { self.state.withLock { $0.connected } }

    /// The rooms the socket is in (always including its own id while connected).
    public var rooms: Set<String> { self.namespace.adapter.rooms(of: self.id) }

    /// The transport of the underlying connection (`polling` or `websocket`).
    public var transport: String {
        get async {
            let engine = self.engine
            let t = try? await engine.eventLoop.submit { engine.transport?.rawValue }.get()
            return (t ?? nil) ?? "closed"
        }
    }

    // MARK: Listening

    /// Adds a listener for event `event`. Every listener of an event runs, in the order they
    /// were added (Node's `socket.on`); they share the ack, which only its first call sends.
    ///
    /// - Parameters:
    ///   - event: the event name.
    ///   - handler: called with the arguments and, when the client wants an answer, the ack.
    /// - Returns: the listener, for ``off(_:)``.
    @discardableResult
    public func on(_ event: String, _ handler: @escaping SocketIOEventHandler) -> SocketIOListener {
        self.addListener(event, once: false, handler)
    }

    /// Adds a listener for the next `event` only (Node's `socket.once`): it is removed before
    /// it runs. An event that middleware drops does not use it up.
    ///
    /// - Parameters:
    ///   - event: the event name.
    ///   - handler: called with the arguments and, when the client wants an answer, the ack.
    /// - Returns: the listener, for ``off(_:)``.
    @discardableResult
    public func once(_ event: String, _ handler: @escaping SocketIOEventHandler) -> SocketIOListener {
        self.addListener(event, once: true, handler)
    }

    /// Adds a listener for event `event` that decodes its first argument as `T` (events whose
    /// argument does not decode are ignored by this listener).
    ///
    /// - Parameters:
    ///   - event: the event name.
    ///   - type: the type of the first argument.
    ///   - handler: called with the decoded value and the ack, if any.
    /// - Returns: the listener, for ``off(_:)``.
    @discardableResult
    public func on<T: Decodable & Sendable>(
        _ event: String,
        as type: T.Type,
        _ handler: @escaping @Sendable (SocketIOSocket, T, SocketIOAck?) -> Void
    ) -> SocketIOListener {
        self.on(event) { socket, args, ack in
            guard let first = args.first, let value = try? first.decode(T.self) else { return }
            handler(socket, value, ack)
        }
    }

    private func addListener(
        _ event: String,
        once: Bool,
        _ handler: @escaping SocketIOEventHandler
    )
        -> SocketIOListener
    {
        let listener = SocketIOListener.next()
        let box = EventHandlerBox(handler, id: listener.id, once: once)
        self.state.withLock { state in
            state.listeners[event] = EventListeners((state.listeners[event]?.all ?? []) + [box])
        }
        return listener
    }

    /// Called for every incoming event, before its own listeners.
    /// - Returns: the listener, for ``off(_:)``.
    @discardableResult
    public func onAny(
        _ handler: @escaping @Sendable (SocketIOSocket, String, [JSONValue]) -> Void
    )
        -> SocketIOListener
    {
        self.register(handler, in: \.anyHandlers)
    }

    /// Called for every event this socket emits (broadcasts included).
    /// - Returns: the listener, for ``off(_:)``.
    @discardableResult
    public func onAnyOutgoing(
        _ handler: @escaping @Sendable (SocketIOSocket, String, [JSONValue]) -> Void
    )
        -> SocketIOListener
    {
        self.register(handler, in: \.anyOutgoing)
    }

    /// Packet middleware: runs for each incoming event before any listener; throwing drops the
    /// event.
    public func use(_ middleware: @escaping @Sendable (SocketIOSocket, String, [JSONValue]) throws -> Void) {
        self.state.withLock { $0.middlewares.append(middleware) }
    }

    /// Called when the socket is about to disconnect, while it is still in its rooms.
    /// - Returns: the listener, for ``off(_:)``.
    @discardableResult
    public func onDisconnecting(
        _ handler: @escaping @Sendable (SocketIOSocket, SocketIODisconnectReason) -> Void
    )
        -> SocketIOListener
    {
        self.register(handler, in: \.disconnecting)
    }

    /// Called once the socket has disconnected.
    /// - Returns: the listener, for ``off(_:)``.
    @discardableResult
    public func onDisconnect(
        _ handler: @escaping @Sendable (SocketIOSocket, SocketIODisconnectReason) -> Void
    )
        -> SocketIOListener
    {
        self.register(handler, in: \.disconnected)
    }

    private func register<Call: Sendable>(
        _ call: Call,
        in list: WritableKeyPath<State, [Registered<Call>]>
    ) -> SocketIOListener {
        let listener = SocketIOListener.next()
        self.state.withLock { $0[keyPath: list].append(Registered(id: listener.id, call: call)) }
        return listener
    }

    /// Removes a listener added by any of the `on…` methods or ``once(_:_:)`` (Node's
    /// `socket.off`, `offAny`, `offAnyOutgoing`). Removing it again, or a `once` listener that
    /// already ran, does nothing.
    /// - Returns: whether the listener was registered.
    @discardableResult
    public func off(_ listener: SocketIOListener) -> Bool {
        self.state.withLock { state in
            for name in state.listeners.keys {
                if !state.removeListeners(of: name, where: { $0.id == listener.id }).isEmpty { return true }
            }
            return state.anyHandlers.remove(listener) || state.anyOutgoing.remove(listener)
                || state.disconnecting.remove(listener) || state.disconnected.remove(listener)
        }
    }

    /// Removes every listener of `event` (added with `on` or `once`), or of every event when
    /// `event` is `nil` (Node's `socket.removeAllListeners`). `onAny`, `onAnyOutgoing` and the
    /// disconnect listeners stay: see ``offAny()``, ``offAnyOutgoing()`` and ``off(_:)``.
    public func removeAllListeners(_ event: String? = nil) {
        self.state.withLock { state in
            if let event {
                state.listeners[event] = nil
            } else {
                state.listeners = [:]
            }
        }
    }

    /// Removes every `onAny` listener (Node's `socket.offAny()`).
    public func offAny() {
        self.state.withLock { $0.anyHandlers = [] }
    }

    /// Removes every `onAnyOutgoing` listener (Node's `socket.offAnyOutgoing()`).
    public func offAnyOutgoing() {
        self.state.withLock { $0.anyOutgoing = [] }
    }

    /// How many listeners event `event` has (Node's `socket.listenerCount`).
    public func listenerCount(_ event: String) -> Int {
        self.state.withLock { $0.listeners[event]?.all.count ?? 0 }
    }

    // MARK: Emitting

    /// Sends an event to this socket's client.
    ///
    /// - Parameters:
    ///   - event: the event name.
    ///   - args: the arguments (`.binary` values become attachments).
    public func emit(_ event: String, _ args: JSONValue...) {
        self.emit(event, arguments: args)
    }

    /// Sends an event to this socket's client.
    ///
    /// - Parameters:
    ///   - event: the event name.
    ///   - arguments: the arguments (`.binary` values become attachments).
    public func emit(_ event: String, arguments: [JSONValue]) {
        let packet = SocketIOPacket(
            kind: .event,
            namespace: self.namespace.name,
            payload: .array([.string(event)] + arguments)
        )
        self.send(OutgoingPacket(packet), volatile: false)
    }

    /// Sends an event with one `Encodable` argument (encoded with `JSONEncoder`).
    ///
    /// - Throws: when the value does not encode.
    public func emit<T: Encodable>(_ event: String, encoding value: T) throws {
        self.emit(event, arguments: [try JSONValue(encoding: value)])
    }

    /// Sends an event and waits for the client's answer.
    ///
    /// - Parameters:
    ///   - event: the event name.
    ///   - args: the arguments.
    ///   - timeout: how long to wait; the server's `defaultAckTimeout` when `nil`.
    /// - Returns: the arguments of the client's ack.
    /// - Throws: ``SocketIOAckError``.
    public func emitWithAck(
        _ event: String,
        _ args: JSONValue...,
        timeout: TimeAmount? = nil
    ) async throws
        -> [JSONValue]
    {
        try await self.emitWithAck(event, arguments: args, timeout: timeout)
    }

    /// Sends an event and waits for the client's answer (see ``emitWithAck(_:_:timeout:)``).
    public func emitWithAck(
        _ event: String,
        arguments: [JSONValue],
        timeout: TimeAmount? = nil
    ) async throws
        -> [JSONValue]
    {
        let id = self.namespace.nextAckID()
        let packet = SocketIOPacket(
            kind: .event,
            namespace: self.namespace.name,
            ackID: id,
            payload: .array([.string(event)] + arguments)
        )
        let timeout = timeout ?? self.namespace.configuration.defaultAckTimeout
        return try await withCheckedThrowingContinuation { continuation in
            let registered = self.registerAck(id: id, timeout: timeout) { result in
                continuation.resume(with: result)
            }
            guard registered else { return }
            self.send(OutgoingPacket(packet), volatile: false)
        }
    }

    /// Registers a pending ack; completes it at once with an error when that is impossible.
    /// - Returns: whether the caller should send the packet.
    @discardableResult
    func registerAck(
        id: UInt64,
        timeout: TimeAmount?,
        _ complete: @escaping @Sendable (Result<[JSONValue], SocketIOAckError>) -> Void
    ) -> Bool {
        let limit = self.namespace.configuration.maxPendingAcks
        let error: SocketIOAckError? = self.state.withLock { state in
            guard state.connected else { return .disconnected }
            guard state.pendingAcks.count < limit else { return .tooManyPendingAcks }
            state.pendingAcks[id] = PendingAck(complete: complete, timer: nil)
            return nil
        }
        if let error {
            complete(.failure(error))
            return false
        }
        if let timeout {
            // On the connection's loop, in its timer heap (cancelling a NIO task searches every
            // task of the loop: thousands of pending acks made each answer cost that much).
            let deadline = NIODeadline.now() + timeout
            let loop = self.engine.eventLoop
            if loop.inEventLoop {
                self.armAckTimer(id: id, deadline: deadline)
            } else {
                loop.execute { self.armAckTimer(id: id, deadline: deadline) }
            }
        }
        return true
    }

    /// Arms the timeout of pending ack `id`, if it is still pending. On the connection's loop.
    private func armAckTimer(id: UInt64, deadline: NIODeadline) {
        let timer = LoopTimer(tag: id)
        let pending = self.state.withLock { state -> Bool in
            guard state.pendingAcks[id] != nil else { return false }
            state.pendingAcks[id]?.timer = timer
            return true
        }
        if pending { timer.arm(at: deadline, on: self.engine.eventLoop, target: self) }
    }

    package func loopTimerFired(_ timer: LoopTimer) {
        self.completeAck(id: timer.tag, .failure(.timeout))
    }

    /// Disarms an ack's timer, on the connection's loop.
    private func cancel(_ timer: LoopTimer?) {
        guard let timer else { return }
        let loop = self.engine.eventLoop
        if loop.inEventLoop {
            timer.cancel()
        } else {
            loop.execute { timer.cancel() }
        }
    }

    /// Completes (and forgets) a pending ack.
    func completeAck(id: UInt64, _ result: Result<[JSONValue], SocketIOAckError>) {
        guard let pending = self.state.withLock({ $0.pendingAcks.removeValue(forKey: id) }) else { return }
        self.cancel(pending.timer)
        pending.complete(result)
    }

    /// Hands an encoded packet to the connection.
    func send(_ packet: OutgoingPacket, volatile: Bool, compress: Bool = true) {
        let listeners = self.state.withLock { $0.connected ? $0.anyOutgoing : nil }
        guard let listeners else { return }
        if !listeners.isEmpty, let name = packet.packet.eventName {
            let args = packet.packet.arguments
            for listener in listeners { listener.call(self, name, args) }
        }
        self.engine.send(
            encodedText: packet.frame,
            attachments: packet.attachments,
            volatile: volatile,
            compress: compress
        )
    }

    // MARK: Flags

    /// Emits with the `compress` flag: `false` sends without permessage-deflate (Node's
    /// `socket.compress(false).emit(…)`).
    public func compress(_ compress: Bool) -> SocketIOSocketEmitter {
        SocketIOSocketEmitter(socket: self, volatile: false, compress: compress)
    }

    /// Emits that are dropped when the client cannot take them right now (Node's
    /// `socket.volatile.emit(…)`).
    public var volatile: SocketIOSocketEmitter { SocketIOSocketEmitter(socket: self, volatile: true, compress: true) }

    // MARK: Rooms and broadcasts

    /// Joins rooms.
    public func join(_ rooms: String...) { self.join(Set(rooms)) }

    /// Joins rooms.
    public func join(_ rooms: Set<String>) { self.namespace.adapter.join(self.id, rooms: rooms) }

    /// Leaves a room.
    public func leave(_ room: String) { self.namespace.adapter.leave(self.id, room: room) }

    /// A broadcast to `rooms`, excluding this socket.
    public func to(_ rooms: String...) -> BroadcastOperator { self.broadcast.to(Set(rooms)) }

    /// Same as ``to(_:)``.
    public func `in`(_ rooms: String...) -> BroadcastOperator { self.broadcast.to(Set(rooms)) }

    /// A broadcast to everyone except `rooms` and this socket.
    public func except(_ rooms: String...) -> BroadcastOperator { self.broadcast.except(Set(rooms)) }

    /// A broadcast to every socket of the namespace except this one.
    public var broadcast: BroadcastOperator {
        BroadcastOperator(namespace: self.namespace, options: BroadcastOptions(except: [self.id]))
    }

    // MARK: Disconnecting

    /// Disconnects the socket from its namespace (reason `server namespace disconnect`); with
    /// `close`, closes the whole connection (every namespace of it).
    public func disconnect(close: Bool = false) {
        let engine = self.engine
        let run: @Sendable () -> Void = {
            guard let client = engine.attachment as? SocketIOClient else { return }
            if close {
                client.disconnectAll(reason: .serverNamespaceDisconnect)
                engine.close()
            } else {
                client.disconnect(namespace: self.namespace.name, reason: .serverNamespaceDisconnect, tellClient: true)
            }
        }
        if engine.eventLoop.inEventLoop { run() } else { engine.eventLoop.execute(run) }
    }

    // MARK: Lifecycle (called by the connection, on its loop)

    func markConnected() {
        self.state.withLock { $0.connected = true }
    }

    func received(_ packet: SocketIOPacket) {
        switch packet.kind {
        case .event, .binaryEvent:
            guard case .array(let items) = packet.payload, let first = items.first else { return }
            let name = first.stringValue ?? first.jsonText
            let args = Array(items.dropFirst())
            let (middlewares, any, found) = self.state.withLock {
                ($0.middlewares, $0.anyHandlers, $0.listeners[name])
            }
            var listeners = found
            do {
                for middleware in middlewares { try middleware(self, name, args) }
            } catch {
                return
            }
            if let current = listeners, current.hasOnce {
                let list = current.all
                // A `once` listener runs if this event removed it (not if `off` came first).
                let removed = self.state.withLock { state in
                    state.removeListeners(of: name) { $0.once && list.contains(identity: $0) }
                }
                listeners = EventListeners(list.filter { !$0.once || removed.contains(identity: $0) })
            }
            for listener in any { listener.call(self, name, args) }
            let ack = packet.ackID.map { SocketIOAck(socket: self, id: $0) }
            switch listeners {
            case .one(let listener):
                listener.handler(self, args, ack)
            case .many(let list):
                for listener in list { listener.handler(self, args, ack) }
            case nil:
                break
            }
        case .ack, .binaryAck:
            guard let id = packet.ackID else { return }
            self.completeAck(id: id, .success(packet.arguments))
        case .connect, .disconnect, .connectError:
            break
        }
    }

    func closed(reason: SocketIODisconnectReason) {
        let disconnecting = self.state.withLock {
            state -> [Registered<@Sendable (SocketIOSocket, SocketIODisconnectReason) -> Void>]? in
            guard state.connected else { return nil }
            return state.disconnecting
        }
        guard let disconnecting else { return }
        for handler in disconnecting { handler.call(self, reason) }
        self.namespace.adapter.remove(self)
        let (acks, handlers) = self.state.withLock { state in
            state.connected = false
            let acks = state.pendingAcks
            state.pendingAcks = [:]
            return (acks, state.disconnected)
        }
        for ack in acks.values {
            self.cancel(ack.timer)
            ack.complete(.failure(.disconnected))
        }
        for handler in handlers { handler.call(self, reason) }
    }
}

/// The answer callback of an event the client sent with an ack id. Only the first call sends.
public struct SocketIOAck: Sendable {
    let socket: SocketIOSocket
    let id: UInt64
    private let sent = OnceFlag()

    init(socket: SocketIOSocket, id: UInt64) {
        self.socket = socket
        self.id = id
    }

    /// Answers with `args`.
    public func callAsFunction(_ args: JSONValue...) { self.send(arguments: args) }

    /// Answers with `arguments`.
    public func send(arguments: [JSONValue]) {
        guard self.sent.claim() else { return }
        let packet = SocketIOPacket(
            kind: .ack,
            namespace: self.socket.namespace.name,
            ackID: self.id,
            payload: .array(arguments)
        )
        let encoded = OutgoingPacket(packet)
        self.socket.engine.send(encodedText: encoded.frame, attachments: encoded.attachments)
    }
}

/// Per-socket application data (Node's `socket.data`): a thread-safe JSON object, so that it can
/// travel to other servers (`fetchSockets`) and be kept for a reconnecting client.
public final class SocketIOUserData: Sendable {
    private let values = Mutex<JSONObject>(JSONObject())

    /// The value for `key` (`nil` removes it).
    public subscript(key: String) -> JSONValue? {
        get { self.values.withLock { $0[key] } }
        set { self.values.withLock { $0[key] = newValue } }
    }

    /// All of it, as an object.
    public var value: JSONValue {
        get { .object(self.values.withLock { $0 }) }
        set { self.values.withLock { $0 = newValue.objectValue ?? JSONObject() } }
    }
}

/// A flag that one caller, the first, can claim: an atomic in a small object, where a locked
/// box would cost a mutex and a larger allocation per acknowledgement.
final class OnceFlag: Sendable {
    private let claimed = Atomic<Bool>(false)

    /// Whether this call is the first.
    func claim() -> Bool {
        !self.claimed.exchange(true, ordering: .acquiringAndReleasing)
    }
}

/// An emit to one socket with flags (see ``SocketIOSocket/compress(_:)`` and
/// ``SocketIOSocket/volatile``).
public struct SocketIOSocketEmitter: Sendable {
    let socket: SocketIOSocket
    let volatile: Bool
    let compress: Bool

    /// Adds the `compress` flag.
    public func compress(_ compress: Bool) -> Self {
        Self(socket: self.socket, volatile: self.volatile, compress: compress)
    }

    /// Adds the `volatile` flag.
    public var volatileFlag: Self { Self(socket: self.socket, volatile: true, compress: self.compress) }

    /// Sends the event with the flags.
    public func emit(_ event: String, _ args: JSONValue...) {
        let packet = SocketIOPacket(
            kind: .event,
            namespace: self.socket.namespace.name,
            payload: .array([.string(event)] + args)
        )
        self.socket.send(OutgoingPacket(packet), volatile: self.volatile, compress: self.compress)
    }
}

/// A listener added to a socket: pass it to ``SocketIOSocket/off(_:)`` to remove it (Swift
/// closures cannot be compared, so this stands for Node's listener function).
public struct SocketIOListener: Hashable, Sendable {
    let id: UInt64

    private static let counter = Atomic<UInt64>(0)

    /// A listener id unique in the process.
    static func next() -> Self {
        Self(id: Self.counter.add(1, ordering: .relaxed).newValue)
    }
}

/// A registered callback and its listener id.
struct Registered<Call: Sendable>: Sendable {
    let id: UInt64
    let call: Call
}

extension Array {
    /// Removes the callback registered as `listener`; returns whether there was one.
    mutating func remove<Call>(_ listener: SocketIOListener) -> Bool where Element == Registered<Call> {
        guard let index = self.firstIndex(where: { $0.id == listener.id }) else { return false }
        self.remove(at: index)
        return true
    }
}

/// An event listener, boxed so that looking it up allocates nothing.
final class EventHandlerBox: Sendable {
    let handler: SocketIOEventHandler
    /// The listener id, with the top bit set for a `once` listener (one word: the box stays in
    /// the allocator's size class of a box without either).
    private let tagged: UInt64

    init(_ handler: @escaping SocketIOEventHandler, id: UInt64, once: Bool) {
        self.handler = handler
        self.tagged = once ? id | (1 << 63) : id
    }

    var id: UInt64 { self.tagged & ~(1 << 63) }

    /// Removed before its first run.
    var once: Bool { self.tagged >> 63 == 1 }
}

/// The listeners of one event.
enum EventListeners: Sendable {
    case one(EventHandlerBox)
    case many([EventHandlerBox])

    /// `nil` for no listeners.
    init?(_ list: [EventHandlerBox]) {
        switch list.count {
        case 0: return nil
        case 1: self = .one(list[0])
        default: self = .many(list)
        }
    }

    var all: [EventHandlerBox] {
        switch self {
        case .one(let listener): return [listener]
        case .many(let list): return list
        }
    }

    /// Whether a `once` listener is among them (without making an array).
    var hasOnce: Bool {
        switch self {
        case .one(let listener): return listener.once
        case .many(let list): return list.contains { $0.once }
        }
    }
}

extension [EventHandlerBox] {
    func contains(identity box: EventHandlerBox) -> Bool {
        self.contains { $0 === box }
    }
}
