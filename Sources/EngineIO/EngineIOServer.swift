public import EngineIOCore
import NIOConcurrencyHelpers
public import NIOCore

/// One Engine.IO v4 endpoint: a path, its options, its sessions and the application above it.
///
/// Mount it on an ``HTTPServer`` (which may carry several endpoints on one port). The session
/// table is the only state shared across event loops; it is one lock around one value.
public final class EngineIOServer: Sendable {
    /// The endpoint's options.
    public let configuration: EngineIOConfiguration
    let application: any EngineIOApplication
    private let table: NIOLockedValueBox<SessionTable>

    struct SessionTable {
        var sessions: [HashedKey: Entry] = [:]
        /// One flush scheduler per event loop that has carried a WebSocket.
        var flushSchedulers: [ObjectIdentifier: WebSocketFlushScheduler] = [:]

        /// One open session, and the turns its requests have taken.
        struct Entry {
            let socket: EngineIOSocket
            /// The turn the next request to arrive takes (see ``EngineIOSession/inTurn(_:_:)``;
            /// 32 bits, wrapping: turns are only compared for equality, and never 2³² are in flight).
            var nextTurn: UInt32 = 0
            /// A WebSocket upgrade was accepted and has not failed: its first packets (the probe,
            /// the upgrade) may be read on another loop at the moment a long-polling request is.
            var upgrading = false
        }
    }

    /// The flush scheduler of `loop` (made on first use).
    func flushScheduler(for loop: any EventLoop) -> WebSocketFlushScheduler {
        self.table.withLockedValue { table in
            let key = ObjectIdentifier(loop)
            if let scheduler = table.flushSchedulers[key] { return scheduler }
            let scheduler = WebSocketFlushScheduler(eventLoop: loop)
            table.flushSchedulers[key] = scheduler
            return scheduler
        }
    }

    /// Creates an endpoint.
    ///
    /// - Parameters:
    ///   - configuration: the endpoint's options.
    ///   - application: what handles the sessions' messages.
    public init(configuration: EngineIOConfiguration, application: any EngineIOApplication) {
        self.configuration = configuration
        self.application = application
        self.table = NIOLockedValueBox(SessionTable())
    }

    /// The number of open sessions.
    public var sessionCount: Int { self.table.withLockedValue { $0.sessions.count } }

    /// The open session with id `sid`, if any.
    ///
    /// - Parameter sid: a session id.
    /// - Returns: its handle.
    public func session(id sid: String) -> EngineIOSocket? {
        let key = HashedKey(sid)
        return self.table.withLockedValue { $0.sessions[key]?.socket }
    }

    /// The open session with id `sid` and the turn of a request that has just arrived for it (on
    /// any event loop): the session applies its requests in the order of their turns (see
    /// ``EngineIOSession/inTurn(_:_:)``).
    func sessionForRequest(id sid: String) -> (socket: EngineIOSocket, turn: UInt32)? {
        let key = HashedKey(sid)
        return self.table.withLockedValue { table in
            guard let index = table.sessions.index(forKey: key) else { return nil }
            let entry = table.sessions.values[index]
            table.sessions.values[index].nextTurn &+= 1
            return (entry.socket, entry.nextTurn)
        }
    }

    /// Whether a WebSocket upgrade of session `sid` is under way (or done).
    func isUpgrading(_ sid: String) -> Bool {
        let key = HashedKey(sid)
        return self.table.withLockedValue { $0.sessions[key]?.upgrading ?? false }
    }

    /// Records that a WebSocket upgrade of session `sid` starts (or, with `false`, that it
    /// failed); returns whether the session is open.
    @discardableResult
    func setUpgrading(_ sid: String, _ upgrading: Bool) -> Bool {
        let key = HashedKey(sid)
        return self.table.withLockedValue { table in
            guard let index = table.sessions.index(forKey: key) else { return false }
            table.sessions.values[index].upgrading = upgrading
            return true
        }
    }

    /// The turn of a request for `socket`'s session that has just arrived, or `nil` when the
    /// session has closed (its requests then need no order: they all find it closed).
    func turn(of socket: EngineIOSocket) -> UInt32? {
        self.sessionForRequest(id: socket.id)?.turn
    }

    /// Runs the `allowRequest` hook (if any) for a handshake.
    func allowRequest(_ request: EngineIORequestInfo, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        guard let hook = self.configuration.allowRequest else { return loop.makeSucceededFuture(true) }
        let promise = loop.makePromise(of: Bool.self)
        promise.completeWithTask { await hook(request) }
        return promise.futureResult
    }

    /// Whether a new session may open now (the `maxSessions` limit).
    var hasCapacity: Bool { self.sessionCount < self.configuration.maxSessions }

    /// Creates, registers and starts a session on the current event loop.
    ///
    /// - Returns: the session, or `nil` when the limit is reached or the id is taken.
    func openSession(
        request: EngineIORequestInfo,
        eventLoop: any EventLoop,
        websocket: WebSocketConnection?,
        id chosenID: String? = nil,
        handshakePoll: EventLoopPromise<PollAnswer>? = nil
    ) -> EngineIOSession? {
        eventLoop.preconditionInEventLoop()
        let id = chosenID ?? self.configuration.sessionIDGenerator()
        let session = EngineIOSession(
            id: id,
            eventLoop: eventLoop,
            request: request,
            server: self,
            websocket: websocket
        )
        let key = HashedKey(id)
        let inserted = self.table.withLockedValue { table -> Bool in
            guard table.sessions.count < self.configuration.maxSessions, table.sessions[key] == nil else {
                return false
            }
            table.sessions[key] = SessionTable.Entry(socket: session.handle)
            return true
        }
        guard inserted else { return nil }
        // The handshake request of a polling session is its first long-poll. It is registered
        // before the open packet is queued, so that (as in the reference server) its body is the
        // open packet alone; what the application sends on open waits for the next GET.
        if let handshakePoll { session.pollReceived(promise: handshakePoll, token: 0) }
        session.start()
        return session
    }

    func remove(_ id: String) {
        let key = HashedKey(id)
        _ = self.table.withLockedValue { $0.sessions.removeValue(forKey: key) }
    }

    /// Closes every open session with `reason` (long-polls are answered with a close packet,
    /// WebSockets get a close packet and a close frame).
    ///
    /// - Parameter reason: the reason given to the application.
    /// - Returns: a future that completes once every session has been closed.
    @discardableResult
    public func closeAllSessions(reason: EngineIOCloseReason) -> EventLoopFuture<Void>? {
        let sockets = self.table.withLockedValue { $0.sessions.values.map(\.socket) }
        guard let first = sockets.first else { return nil }
        let futures = sockets.map { socket in
            socket.eventLoop.submit { socket.session.value.close(reason: reason) }
        }
        return EventLoopFuture.andAllComplete(futures, on: first.eventLoop)
    }
}

extension EngineIOError {
    /// 503: the `maxSessions` limit is reached (not a reference-server error; code 3, Bad request).
    static let tooManySessions = EngineIOError(code: 3, message: "Too many sessions", httpStatus: 503)
    /// 413: a POST body (declared or received) over `maxPayload`.
    static let payloadTooLarge = EngineIOError(code: 3, message: "Payload too large", httpStatus: 413)
    /// 503: the bodies being received hold the whole `maxBufferedRequestBodyBytes` budget.
    static let bodyBudgetExhausted = EngineIOError(code: 3, message: "Too many uploads in progress", httpStatus: 503)
}
