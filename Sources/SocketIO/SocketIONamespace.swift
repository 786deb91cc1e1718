import EngineIO
import Logging
import NIOConcurrencyHelpers
public import NIOCore
public import SocketIOCore

/// A namespace: its connection handlers and middleware, its sockets (through its adapter), and
/// broadcasts to them (Node's `Namespace`).
public final class SocketIONamespace: Sendable {
    /// The namespace name, such as `/` or `/chat`.
    public let name: String
    /// Where room memberships live, and how broadcasts reach other servers. A dynamic parent's
    /// adapter relays every operation to its children's adapters (it has no sockets itself).
    public var adapter: any SocketIOAdapter { self.adapterBox.adapter }
    private let adapterBox: AdapterBox
    let configuration: SocketIOConfiguration
    let handlers: Handlers
    private let ackIDs = NIOLockedValueBox<UInt64>(0)

    /// Connection handlers and middleware; shared by the children of a dynamic namespace.
    final class Handlers: Sendable {
        struct Lists {
            var connection: [@Sendable (SocketIOSocket) -> Void] = []
            var middleware: [@Sendable (SocketIOSocket) async throws -> Void] = []
            /// Listeners of events other servers send with `serverSideEmit`.
            var serverSide: [String: [@Sendable ([JSONValue], (@Sendable (JSONValue) -> Void)?) -> Void]] = [:]
        }

        let lists = NIOLockedValueBox(Lists())
        /// The namespaces created from a dynamic parent.
        let children = NIOLockedValueBox<[SocketIONamespace]>([])
    }

    /// Whether this is the parent of dynamic namespaces (it has no sockets of its own).
    let isDynamicParent: Bool

    init(
        name: String,
        configuration: SocketIOConfiguration,
        handlers: Handlers = Handlers(),
        isDynamicParent: Bool = false
    ) {
        self.name = name
        self.isDynamicParent = isDynamicParent
        self.configuration = configuration
        self.handlers = handlers
        self.adapterBox = AdapterBox()
        if isDynamicParent {
            self.adapterBox.adapter = ParentBroadcastAdapter(children: handlers)
        } else {
            let context = SocketIOAdapterContext(
                namespace: name,
                defaultAckTimeout: configuration.defaultAckTimeout,
                serverSideEmitReceived: { [handlers] arguments, ack in
                    Self.deliverServerSideEmit(arguments, ack: ack, handlers: handlers)
                }
            )
            self.adapterBox.adapter = configuration.adapterFactory(context)
        }
    }

    /// Holds the adapter (set once, in `init`, before the namespace is shared).
    private final class AdapterBox: @unchecked Sendable {
        // @unchecked: written once in the namespace's initializer, before any other thread can
        // see the namespace; read-only afterwards.
        var adapter: any SocketIOAdapter = InMemoryAdapter()
    }

    /// Starts the adapter (in the background, as Node does: the namespace works meanwhile).
    func startAdapter() {
        guard !self.isDynamicParent else { return }
        let adapter = self.adapter
        let name = self.name
        let logger = self.configuration.engine.logger
        Task {
            do {
                try await adapter.start()
            } catch {
                logger.error("adapter did not start", metadata: ["namespace": "\(name)", "error": "\(error)"])
            }
        }
    }

    private static func deliverServerSideEmit(
        _ arguments: [JSONValue],
        ack: (@Sendable (JSONValue) -> Void)?,
        handlers: Handlers
    ) {
        guard let event = arguments.first?.stringValue else { return }
        let listeners = handlers.lists.withLockedValue { $0.serverSide[event] ?? [] }
        let args = Array(arguments.dropFirst())
        for listener in listeners { listener(args, ack) }
    }

    /// Calls `handler` for every socket that connects, after middleware accepted it and the
    /// CONNECT answer went out.
    public func onConnection(_ handler: @escaping @Sendable (SocketIOSocket) -> Void) {
        self.handlers.lists.withLockedValue { $0.connection.append(handler) }
    }

    /// Adds connection middleware. It runs for each connecting socket, in order, before the socket
    /// joins; it can read `socket.handshake` (headers, query, auth, address) and set
    /// `socket.data`. Throwing refuses the connection: a ``SocketIOConnectError`` sends its
    /// message and data to the client; any other error sends its description.
    public func use(_ middleware: @escaping @Sendable (SocketIOSocket) async throws -> Void) {
        self.handlers.lists.withLockedValue { $0.middleware.append(middleware) }
    }

    func nextAckID() -> UInt64 {
        self.ackIDs.withLockedValue { id in
            defer { id += 1 }
            return id
        }
    }

    // MARK: Broadcasting

    /// Everyone in the namespace.
    public var broadcast: BroadcastOperator { BroadcastOperator(namespace: self) }

    /// A broadcast to `rooms`.
    public func to(_ rooms: String...) -> BroadcastOperator { self.broadcast.to(Set(rooms)) }

    /// Same as ``to(_:)``.
    public func `in`(_ rooms: String...) -> BroadcastOperator { self.broadcast.to(Set(rooms)) }

    /// A broadcast to everyone except `rooms`.
    public func except(_ rooms: String...) -> BroadcastOperator { self.broadcast.except(Set(rooms)) }

    /// A broadcast that skips receivers that cannot take it right now.
    public var volatile: BroadcastOperator { self.broadcast.volatile }

    /// A broadcast to this server's sockets only.
    public var local: BroadcastOperator { self.broadcast.local }

    /// A broadcast to the namespace with the `compress` flag (`false`: sent without
    /// permessage-deflate or HTTP compression).
    public func compress(_ compress: Bool) -> BroadcastOperator { self.broadcast.compress(compress) }

    /// A broadcast with an ack timeout.
    public func timeout(_ timeout: TimeAmount) -> BroadcastOperator { self.broadcast.timeout(timeout) }

    /// Sends an event to every socket of the namespace (of every child, for a dynamic parent).
    public func emit(_ event: String, _ args: JSONValue...) {
        for namespace in self.targets { namespace.broadcast.emit(event, arguments: args) }
    }

    /// Sends an event to every socket and collects their acks.
    public func emitWithAck(_ event: String, _ args: JSONValue...) async -> BroadcastAckResult {
        await self.broadcast.emitWithAck(event, arguments: args)
    }

    /// Every socket of the namespace, on every server.
    public func fetchSockets() async -> [SocketIORemoteSocket] { await self.broadcast.fetchSockets() }

    /// Makes every socket join rooms.
    public func socketsJoin(_ rooms: String...) { self.adapter.addSockets(BroadcastOptions(), rooms: Set(rooms)) }

    /// Makes every socket leave rooms.
    public func socketsLeave(_ rooms: String...) { self.adapter.delSockets(BroadcastOptions(), rooms: Set(rooms)) }

    /// Disconnects every socket.
    public func disconnectSockets(close: Bool = false) {
        self.adapter.disconnectSockets(BroadcastOptions(), close: close)
    }

    /// Sends an event to this namespace on the other servers of the cluster (their
    /// ``onServerSideEmit(_:_:)`` listeners; not to any client). With the in-memory adapter there
    /// are none, so this does nothing (as in Node without a cluster adapter).
    ///
    /// - Throws: ``SocketIOReservedEventError`` for a name the protocol reserves.
    public func serverSideEmit(_ event: String, _ args: JSONValue...) throws {
        try self.serverSideEmit(event, arguments: args)
    }

    /// ``serverSideEmit(_:_:)`` with the arguments as an array.
    ///
    /// - Throws: ``SocketIOReservedEventError`` for a name the protocol reserves.
    public func serverSideEmit(_ event: String, arguments: [JSONValue]) throws {
        try Self.checkServerSideEvent(event)
        self.adapter.serverSideEmit([.string(event)] + arguments)
    }

    /// Sends an event to the other servers and waits for one answer from each (their
    /// listeners' `ack`), until all answered or `timeout` (the server's `defaultAckTimeout` when
    /// `nil`) passed.
    ///
    /// - Throws: ``SocketIOReservedEventError`` for a name the protocol reserves.
    public func serverSideEmitWithAck(
        _ event: String,
        _ args: JSONValue...,
        timeout: TimeAmount? = nil
    ) async throws -> ServerSideEmitResult {
        try await self.serverSideEmitWithAck(event, arguments: args, timeout: timeout)
    }

    /// ``serverSideEmitWithAck(_:_:timeout:)`` with the arguments as an array.
    ///
    /// - Throws: ``SocketIOReservedEventError`` for a name the protocol reserves.
    public func serverSideEmitWithAck(
        _ event: String,
        arguments: [JSONValue],
        timeout: TimeAmount? = nil
    ) async throws -> ServerSideEmitResult {
        try Self.checkServerSideEvent(event)
        return await self.adapter.serverSideEmitWithAck(
            [.string(event)] + arguments,
            timeout: timeout ?? self.configuration.defaultAckTimeout
        )
    }

    /// Listens to `event` sent by other servers with `serverSideEmit` (Node's `io.on(event)`):
    /// the handler gets the arguments and, when the sender waits for an answer, the callback
    /// that gives it (only the first call counts).
    public func onServerSideEmit(
        _ event: String,
        _ handler: @escaping @Sendable ([JSONValue], (@Sendable (JSONValue) -> Void)?) -> Void
    ) {
        self.handlers.lists.withLockedValue { $0.serverSide[event, default: []].append(handler) }
    }

    private static func checkServerSideEvent(_ event: String) throws {
        guard !socketIOReservedEventNames.contains(event) else { throw SocketIOReservedEventError(event: event) }
    }

    private var targets: [SocketIONamespace] {
        self.isDynamicParent ? self.handlers.children.withLockedValue { $0 } : [self]
    }
}
