public import EngineIO
import EngineIOCore
import NIOConcurrencyHelpers
public import NIOCore
public import SocketIOCore

/// A Socket.IO v5 server: namespaces, middleware, events, acks, rooms and broadcasts over an
/// Engine.IO v4 endpoint (Node's `Server`).
///
/// Mount ``engine`` on an `HTTPServer`. The main namespace `/` always exists; the shortcuts on
/// this type (``onConnection(_:)``, ``emit(_:_:)``, ``to(_:)``…) act on it.
public final class SocketIOServer: Sendable {
    /// The options.
    public let configuration: SocketIOConfiguration
    /// The Engine.IO endpoint to mount on an `HTTPServer`.
    public let engine: EngineIOServer
    let core: SocketIOServerCore

    /// Creates a server.
    ///
    /// - Parameter configuration: the options (Node's defaults unless changed).
    public init(configuration: SocketIOConfiguration = SocketIOConfiguration()) {
        self.configuration = configuration
        self.core = SocketIOServerCore(configuration: configuration)
        var engine = configuration.engine
        engine.maxBufferedPackets = configuration.maxQueuedPackets
        engine.maxBufferedBytes = configuration.maxQueuedBytes
        self.engine = EngineIOServer(configuration: engine, application: EngineBridge(core: self.core))
    }

    /// The namespace `name` (created on first use).
    public func of(_ name: String) -> SocketIONamespace {
        self.core.staticNamespace(name.hasPrefix("/") ? name : "/" + name)
    }

    /// A dynamic namespace: clients may connect to any name that `matches` accepts (it sees the
    /// name and the CONNECT auth). Each accepted name becomes a child namespace sharing the
    /// returned parent's handlers and middleware; emitting on the parent reaches every child.
    public func dynamicNamespace(matching matches: @escaping @Sendable (String, JSONValue) -> Bool) -> SocketIONamespace
    {
        self.core.addDynamic(matches)
    }

    /// A dynamic namespace whose names match a regular expression (whole-name match).
    ///
    /// - Throws: when `pattern` is not a valid regular expression.
    public func dynamicNamespace(pattern: String) throws -> SocketIONamespace {
        let regex = try Regex(pattern)
        // Regex values are immutable once built; matching does not mutate them.
        nonisolated(unsafe) let shared = regex
        return self.dynamicNamespace { name, _ in name.wholeMatch(of: shared) != nil }
    }

    /// The main namespace `/`.
    public var sockets: SocketIONamespace { self.of("/") }

    /// Handles connections to `/`.
    public func onConnection(_ handler: @escaping @Sendable (SocketIOSocket) -> Void) {
        self.sockets.onConnection(handler)
    }

    /// Adds connection middleware to `/`.
    public func use(_ middleware: @escaping @Sendable (SocketIOSocket) async throws -> Void) {
        self.sockets.use(middleware)
    }

    /// Emits to every socket of `/`.
    public func emit(_ event: String, _ args: JSONValue...) {
        self.sockets.broadcast.emit(event, arguments: args)
    }

    /// Emits to every socket of `/` and collects their answers (see
    /// ``SocketIONamespace/emitWithAck(_:_:)``).
    public func emitWithAck(_ event: String, _ args: JSONValue...) async -> BroadcastAckResult {
        await self.sockets.broadcast.emitWithAck(event, arguments: args)
    }

    /// A broadcast to rooms of `/`.
    public func to(_ rooms: String...) -> BroadcastOperator { self.sockets.broadcast.to(Set(rooms)) }

    /// Same as ``to(_:)``.
    public func `in`(_ rooms: String...) -> BroadcastOperator { self.sockets.broadcast.to(Set(rooms)) }

    /// A broadcast to `/` that skips receivers that cannot take it right now.
    public var volatile: BroadcastOperator { self.sockets.broadcast.volatile }

    /// A broadcast to `/` on this server only (the same as a plain one without a cluster).
    public var local: BroadcastOperator { self.sockets.broadcast.local }

    /// A broadcast to `/` with the `compress` flag (`false`: sent without permessage-deflate or
    /// HTTP compression).
    public func compress(_ compress: Bool) -> BroadcastOperator { self.sockets.broadcast.compress(compress) }

    /// A broadcast to `/` with an ack timeout.
    public func timeout(_ timeout: TimeAmount) -> BroadcastOperator { self.sockets.broadcast.timeout(timeout) }

    /// A broadcast to everyone in `/` except `rooms`.
    public func except(_ rooms: String...) -> BroadcastOperator { self.sockets.broadcast.except(Set(rooms)) }

    /// The sockets of `/`, on every server.
    public func fetchSockets() async -> [SocketIORemoteSocket] { await self.sockets.fetchSockets() }

    /// Makes every socket of `/` join rooms.
    public func socketsJoin(_ rooms: String...) {
        self.sockets.adapter.addSockets(BroadcastOptions(), rooms: Set(rooms))
    }

    /// Makes every socket of `/` leave rooms.
    public func socketsLeave(_ rooms: String...) {
        self.sockets.adapter.delSockets(BroadcastOptions(), rooms: Set(rooms))
    }

    /// Disconnects every socket of `/`.
    public func disconnectSockets(close: Bool = false) { self.sockets.disconnectSockets(close: close) }

    /// Sends an event to `/` on the other servers of the cluster (nothing without a cluster
    /// adapter; see ``SocketIONamespace/serverSideEmit(_:_:)``).
    ///
    /// - Throws: ``SocketIOReservedEventError`` for a name the protocol reserves.
    public func serverSideEmit(_ event: String, _ args: JSONValue...) throws {
        try self.sockets.serverSideEmit(event, arguments: args)
    }

    /// Sends an event to `/` on the other servers and collects one answer from each (see
    /// ``SocketIONamespace/serverSideEmitWithAck(_:_:timeout:)``).
    ///
    /// - Throws: ``SocketIOReservedEventError`` for a name the protocol reserves.
    public func serverSideEmitWithAck(
        _ event: String,
        _ args: JSONValue...,
        timeout: TimeAmount? = nil
    ) async throws -> ServerSideEmitResult {
        try await self.sockets.serverSideEmitWithAck(event, arguments: args, timeout: timeout)
    }

    /// Listens to `event` sent to `/` by other servers (see
    /// ``SocketIONamespace/onServerSideEmit(_:_:)``).
    public func onServerSideEmit(
        _ event: String,
        _ handler: @escaping @Sendable ([JSONValue], (@Sendable (JSONValue) -> Void)?) -> Void
    ) {
        self.sockets.onServerSideEmit(event, handler)
    }

    /// Closes every namespace's adapter (a cluster adapter leaves the cluster); call it when
    /// the server stops serving (Node's `io.close()`, after the HTTP server stopped).
    public func close() async {
        for namespace in self.core.allNamespaces { await namespace.adapter.close() }
    }
}

/// The server's namespaces; shared by every connection.
final class SocketIOServerCore: Sendable {
    let configuration: SocketIOConfiguration
    private let namespaces: NIOLockedValueBox<[String: SocketIONamespace]>
    private let dynamic = NIOLockedValueBox<[(@Sendable (String, JSONValue) -> Bool, SocketIONamespace)]>([])

    init(configuration: SocketIOConfiguration) {
        self.configuration = configuration
        let main = SocketIONamespace(name: "/", configuration: configuration)
        self.namespaces = NIOLockedValueBox(["/": main])
        main.startAdapter()
    }

    /// Every namespace with an adapter of its own (static ones and dynamic children).
    var allNamespaces: [SocketIONamespace] { self.namespaces.withLockedValue { Array($0.values) } }

    func staticNamespace(_ name: String) -> SocketIONamespace {
        let (namespace, created) = self.namespaces.withLockedValue { namespaces in
            if let namespace = namespaces[name] { return (namespace, false) }
            let namespace = SocketIONamespace(name: name, configuration: self.configuration)
            namespaces[name] = namespace
            return (namespace, true)
        }
        if created { namespace.startAdapter() }
        return namespace
    }

    func addDynamic(_ matches: @escaping @Sendable (String, JSONValue) -> Bool) -> SocketIONamespace {
        let parent = SocketIONamespace(name: "(dynamic)", configuration: self.configuration, isDynamicParent: true)
        self.dynamic.withLockedValue { $0.append((matches, parent)) }
        return parent
    }

    /// The namespace a client may connect to, creating a dynamic child when a matcher accepts.
    func namespace(named name: String, auth: JSONValue) -> SocketIONamespace? {
        if let namespace = self.namespaces.withLockedValue({ $0[name] }) { return namespace }
        let matchers = self.dynamic.withLockedValue { $0 }
        for (matches, parent) in matchers where matches(name, auth) {
            let (namespace, created) = self.namespaces.withLockedValue { namespaces in
                if let namespace = namespaces[name] { return (namespace, false) }
                let child = SocketIONamespace(name: name, configuration: self.configuration, handlers: parent.handlers)
                namespaces[name] = child
                parent.handlers.children.withLockedValue { $0.append(child) }
                return (child, true)
            }
            if created { namespace.startAdapter() }
            return namespace
        }
        return nil
    }
}

/// Connects the Engine.IO seam to Socket.IO connections.
struct EngineBridge: EngineIOApplication {
    let core: SocketIOServerCore

    func sessionOpened(_ socket: EngineIOSocket) {
        let client = SocketIOClient(engine: socket, server: self.core)
        socket.attachment = client
        client.opened()
    }

    func textReceived(_ text: String, from socket: EngineIOSocket) {
        (socket.attachment as? SocketIOClient)?.textReceived(text)
    }

    func binaryReceived(_ bytes: ByteBuffer, from socket: EngineIOSocket) {
        (socket.attachment as? SocketIOClient)?.binaryReceived(bytes)
    }

    func sessionClosed(_ socket: EngineIOSocket, reason: EngineIOCloseReason) {
        (socket.attachment as? SocketIOClient)?.closed(reason: reason)
    }
}
