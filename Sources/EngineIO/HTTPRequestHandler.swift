import EngineIOCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import PerMessageDeflate
import Synchronization

/// The HTTP side of the server: routes each request to its Engine.IO endpoint (long-polling,
/// handshakes, errors) or to the fallback, and enforces the request limits: the header and body
/// timeouts, bodies declared over the limit (413 from the head alone), the body budget shared by
/// every connection (503), and the refusals of the codecs in front (431, 413, 400). A request
/// that is refused from its head (or that has a body and cannot succeed) is answered at once, and
/// its connection closed after reading and dropping what the client still sends for a moment.
///
/// It sits behind ``HTTPSimpleCodec`` (long-polling) or NIO's HTTP/1.1 codec with pipelining
/// assistance, which give it the same request parts under the same pipelining rule, so requests
/// on one connection are handled one at a time, in order; keep-alive follows the request's wishes.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler, LoopTimerTarget {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// What a pending deadline is for.
    private enum Deadline {
        /// The next request head.
        case head(NIODeadline)
        /// The rest of the current request's body.
        case body(NIODeadline)

        var time: NIODeadline {
            switch self {
            case .head(let time), .body(let time): return time
            }
        }
    }

    private enum State {
        /// Waiting for a request head.
        case idle
        /// A request whose answer is decided once its body has been read (and discarded).
        case answerAtEnd(HTTPRequestHead, Route)
        /// A POST whose body feeds the payload decoder.
        case post(HTTPRequestHead, EngineIOServer, EngineIOSocket, EngineIOPayloadDecoder, EngineIOCodecError?)
        /// The answer is being produced asynchronously (a long-poll, a handshake hook).
        case waiting
        /// The response is out and the connection will close; the rest of the request body is read
        /// and dropped first, so that closing does not reset the connection under the response.
        case drainingThenClose
        /// The connection is closing; ignore everything.
        case closing
    }

    indirect enum Route {
        /// A WebSocket opening handshake: switch protocols if the upgrader accepts it, else
        /// answer `otherwise`.
        case upgrade(key: String, target: UpgradeTarget, otherwise: Route)
        case file(HTTPFallbackResponse)
        case endpoint(EngineIOServer, Result<EngineIORequestKind, EngineIOError>)
        case preflight(EngineIOServer)
        case fallback
        case error(EngineIOError, EngineIOServer)

        /// The endpoint the request is for, if any (its CORS headers go on every answer).
        var server: EngineIOServer? {
            switch self {
            case .endpoint(let server, _), .preflight(let server), .error(_, let server): return server
            case .upgrade(_, _, let otherwise): return otherwise.server
            case .file, .fallback: return nil
            }
        }

        /// The error the request is answered with whatever follows its head, if it is one.
        var error: (EngineIOError, EngineIOServer)? {
            switch self {
            case .error(let error, let server), .endpoint(let server, .failure(let error)): return (error, server)
            case .endpoint(_, .success), .upgrade, .file, .preflight, .fallback: return nil
            }
        }
    }

    private let endpoints: [EngineIOServer]
    private let settings: HTTPServer.Settings
    private let upgrader: WebSocketUpgrader
    private let acceptsWebSocket: (Substring) -> Bool
    private var state: State = .idle
    private let headerTimer = LoopTimer()
    /// What the client must finish by when: the next request head, or the body of the request
    /// being read; `nil` while a request is being answered. The timer is not moved for every
    /// request (a long-poll connection sees many a second): when it fires early it is set again
    /// for the deadline it finds.
    private var deadline: Deadline?
    /// The body bytes of the POST being read, taken from the server's body budget.
    private var heldBodyBytes = 0
    private var pendingPoll: (server: EngineIOServer, socket: EngineIOSocket, token: UInt64)?
    /// Distinct tokens for held long-polls (0 is the handshake's).
    private static let pollTokens = Atomic<UInt64>(0)
    private var context: ChannelHandlerContext?
    /// The upgrade decision already taken for the connection's first request by the fast path
    /// (``HTTPFirstRequestHandler``), which then handed the request over: not asked twice.
    private var presetDecision: Result<UpgradeDecision, any Error>?
    /// The first request head's deadline when the fast path already started the clock.
    private var firstHeaderDeadline: NIODeadline?

    /// Decides and performs WebSocket upgrades (see ``HTTPServer``).
    struct WebSocketUpgrader: Sendable {
        /// Whether the handshake may proceed (and with what), or why not.
        var decide: @Sendable (any Channel, HTTPRequestHead, UpgradeTarget) -> EventLoopFuture<UpgradeDecision>
        /// Adds the WebSocket handlers, which send the given 101 response first.
        var install: @Sendable (any Channel, UpgradeTarget, AcceptedUpgrade, ByteBuffer) throws -> Void
    }

    /// - Parameters:
    ///   - acceptsWebSocket: whether a path outside the endpoints takes WebSockets (the plain
    ///     echo of the `websocket-echo` profile).
    ///   - firstHeaderDeadline: when the first request head is due, if the clock started earlier.
    ///   - presetDecision: the upgrade decision for the first request, if already taken.
    init(
        endpoints: [EngineIOServer],
        settings: HTTPServer.Settings,
        upgrader: WebSocketUpgrader,
        acceptsWebSocket: @escaping (Substring) -> Bool,
        firstHeaderDeadline: NIODeadline? = nil,
        presetDecision: Result<UpgradeDecision, any Error>? = nil
    ) {
        self.endpoints = endpoints
        self.settings = settings
        self.upgrader = upgrader
        self.acceptsWebSocket = acceptsWebSocket
        self.firstHeaderDeadline = firstHeaderDeadline
        self.presetDecision = presetDecision
    }

    // MARK: Lifecycle and the header timeout

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.armHeaderTimer(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.headerTimer.cancel()
        self.releaseBody()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.armHeaderTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.headerTimer.cancel()
        self.releaseBody()
        self.state = .closing
        if let pending = self.pendingPoll {
            // A client that drops a pending long-poll closes its session (Engine.IO v4), after
            // the poll itself has taken effect.
            self.pendingPoll = nil
            let token = pending.token
            let socket = pending.socket
            let turn = pending.server.turn(of: socket)
            socket.eventLoop.execute {
                let session = socket.session.value
                session.inTurn(turn) { session.pollAborted(token: token) }
            }
        }
        context.fireChannelInactive()
    }

    /// A client gets `requestHeaderTimeout` from connecting (or from the end of the previous
    /// response) to finish its next request head; slow-header clients are dropped.
    private func armHeaderTimer(context: ChannelHandlerContext) {
        let deadline = self.firstHeaderDeadline ?? NIODeadline.now() + self.settings.requestHeaderTimeout
        self.firstHeaderDeadline = nil
        self.arm(.head(deadline), context: context)
    }

    private func arm(_ deadline: Deadline, context: ChannelHandlerContext) {
        self.deadline = deadline
        if !self.headerTimer.isArmed || deadline.time < self.timerDeadline {
            self.timerDeadline = deadline.time
            self.headerTimer.arm(at: deadline.time, on: context.eventLoop, target: self)
        }
    }

    /// When the timer is set to fire (it may be earlier than ``deadline``).
    private var timerDeadline = NIODeadline.distantFuture

    func loopTimerFired(_ timer: LoopTimer) {
        // A request in progress re-arms it when its response is out.
        guard let deadline = self.deadline, let context = self.context else { return }
        guard deadline.time <= .now() else {
            self.timerDeadline = deadline.time
            self.headerTimer.arm(at: deadline.time, on: context.eventLoop, target: self)
            return
        }
        self.deadline = nil
        switch deadline {
        case .head:
            context.close(promise: nil)
        case .body:
            self.bodyTimedOut(context: context)
        }
    }

    /// A body did not arrive in time: 408, and the connection closes (its session, if any, is
    /// left alone: the POST never took effect).
    private func bodyTimedOut(context: ChannelHandlerContext) {
        self.releaseBody()
        let request: (HTTPRequestHead, EngineIOServer?)
        switch self.state {
        case .post(let head, let server, _, _, _): request = (head, server)
        case .answerAtEnd(let head, let route): request = (head, route.server)
        case .idle, .waiting, .drainingThenClose, .closing: return context.close(promise: nil)
        }
        self.state = .waiting
        self.respond(
            context: context,
            head: request.0,
            status: .requestTimeout,
            headers: HTTPHeaders(),
            body: nil,
            cors: request.1,
            close: true
        )
    }

    /// Gives the body bytes this connection holds back to the server's budget.
    private func releaseBody() {
        self.settings.bodyBudget.release(self.heldBodyBytes)
        self.heldBodyBytes = 0
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.deadline = nil
            self.receivedHead(context: context, head: head)
        case .body(let body):
            self.receivedBody(context: context, body: body)
        case .end:
            self.receivedEnd(context: context)
        }
    }

    private func receivedHead(context: ChannelHandlerContext, head: HTTPRequestHead) {
        guard case .idle = self.state else { return }
        let body = Self.declaredBody(head)
        switch Self.plan(
            head: head,
            endpoints: self.endpoints,
            settings: self.settings,
            acceptsWebSocket: self.acceptsWebSocket
        ) {
        case .answer(let route):
            if body != .none, let (error, server) = route.error {
                // It fails whatever its body holds: answered now, as Node does, not after the body.
                self.state = .waiting
                return self.respondError(
                    context: context,
                    head: head,
                    server: server,
                    error: error,
                    close: true,
                    drain: true
                )
            }
            if case .length(let length) = body, length > self.settings.limits.maxBodySize {
                self.state = .waiting
                return self.respondError(
                    context: context,
                    head: head,
                    server: route.server,
                    error: .payloadTooLarge,
                    close: true,
                    drain: true
                )
            }
            self.state = .answerAtEnd(head, route)
        case .post(let server, let socket):
            if case .length(let length) = body, length > server.configuration.maxPayload {
                // Refused from the head alone, as a body that grows too large is refused.
                socket.eventLoop.execute { socket.session.value.close(reason: .payloadTooLarge) }
                self.state = .waiting
                return self.respondError(
                    context: context,
                    head: head,
                    server: server,
                    error: .payloadTooLarge,
                    close: true,
                    drain: true
                )
            }
            self.state = .post(
                head,
                server,
                socket,
                EngineIOPayloadDecoder(maxPayload: server.configuration.maxPayload),
                nil
            )
        case .binaryPost(let server, let socket):
            // Engine.IO v4 sends binary as base64 text in polling payloads; a binary body is a
            // protocol error that closes the session.
            socket.close()
            if body != .none {
                self.state = .waiting
                return self.respondError(
                    context: context,
                    head: head,
                    server: server,
                    error: .badRequest,
                    close: true,
                    drain: true
                )
            }
            self.state = .answerAtEnd(head, .error(.badRequest, server))
        }
        if body != .none {
            self.arm(.body(.now() + self.settings.requestBodyTimeout), context: context)
        }
    }

    /// How a request head says its body is framed.
    enum DeclaredBody: Equatable {
        /// No body.
        case none
        /// `Content-Length` bytes (`Int.max` for a length too large to represent).
        case length(Int)
        /// A transfer coding (chunked): the size is known only as the body arrives.
        case chunked
    }

    /// The body `head` announces (both codecs in front have checked the framing headers).
    static func declaredBody(_ head: HTTPRequestHead) -> DeclaredBody {
        var length: Int?
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 17 where Self.equalsIgnoringASCIICase(name.utf8, "transfer-encoding"):
                return .chunked
            case 14 where Self.equalsIgnoringASCIICase(name.utf8, "content-length"):
                // Saturating: all that matters of a huge length is that it exceeds the limits.
                length = value.utf8.reduce(0) { total, byte in
                    let digit = Int(byte &- UInt8(ascii: "0"))
                    guard (0...9).contains(digit), total <= (Int.max - digit) / 10 else { return Int.max }
                    return total * 10 + digit
                }
            default:
                break
            }
        }
        guard let length, length > 0 else { return .none }
        return .length(length)
    }

    /// What a request head asks for, before its body (if any) is read.
    enum Plan {
        /// Answer `Route` once the request has ended.
        case answer(Route)
        /// A long-polling POST to a live session: its body feeds the session.
        case post(EngineIOServer, EngineIOSocket)
        /// A long-polling POST with a binary content type: refused, and the session closed.
        case binaryPost(EngineIOServer, EngineIOSocket)
    }

    /// Routes a request head (no side effects: both the first-request fast path and this handler
    /// ask it).
    static func plan(
        head: HTTPRequestHead,
        upgrade: WebSocketRequest? = nil,
        endpoints: [EngineIOServer],
        settings: HTTPServer.Settings,
        acceptsWebSocket: (Substring) -> Bool
    ) -> Plan {
        let upgrade = upgrade ?? WebSocketRequest(head)
        if head.method == .GET || head.method == .HEAD, let files = settings.files, let file = files(head) {
            return .answer(.file(file))
        }
        let path = EngineIOQuery.path(of: head.uri)
        guard let server = endpoints.first(where: { Self.matches(path: path, endpoint: $0.configuration.path) })
        else {
            if let key = upgrade.key, acceptsWebSocket(path) {
                return .answer(.upgrade(key: key, target: .echo, otherwise: .fallback))
            }
            return .answer(.fallback)
        }
        if head.method == .OPTIONS, server.configuration.cors != nil,
            head.headers.contains(name: "access-control-request-method")
        {
            return .answer(.preflight(server))
        }
        let query = EngineIOQuery(uri: head.uri)
        let isUpgrade = upgrade.isUpgrade
        let kind: Result<EngineIORequestKind, EngineIOError>
        do {
            kind = .success(
                try EngineIORequestKind.classify(
                    method: head.method.rawValue,
                    query: query,
                    isUpgrade: isUpgrade,
                    transports: server.configuration.transports,
                    allowUpgrades: server.configuration.allowUpgrades
                )
            )
        } catch {
            kind = .failure(error)
        }
        if case .success(.post(let sid)) = kind {
            guard let socket = server.session(id: sid) else { return .answer(.error(.unknownSid, server)) }
            if let contentType = head.headers.first(name: "content-type"),
                Self.hasPrefixIgnoringASCIICase(contentType, "application/octet-stream")
            {
                return .binaryPost(server, socket)
            }
            return .post(server, socket)
        }
        if let key = upgrade.key {
            let otherwise = Route.endpoint(server, kind)
            switch kind {
            case .success(.websocketHandshake):
                return .answer(.upgrade(key: key, target: .handshake(server), otherwise: otherwise))
            case .success(.websocketUpgrade(let sid)):
                return .answer(.upgrade(key: key, target: .upgrade(server, sid: sid), otherwise: otherwise))
            default:
                break
            }
        }
        return .answer(.endpoint(server, kind))
    }

    /// What a request head says about WebSocket, read in one pass over its headers.
    struct WebSocketRequest {
        /// Whether it asks for an upgrade to WebSocket: a `Connection` header listing `upgrade`
        /// and an `Upgrade` header listing `websocket` (tokens compared without case, RFC 7230
        /// §6.1, §6.7).
        var isUpgrade = false
        /// The `Sec-WebSocket-Key` of a WebSocket opening handshake (RFC 6455 §4.2.1: a GET
        /// asking for the upgrade, with one key and version 13); `nil` for any other request.
        var key: String?

        /// Reads `head`'s headers byte-wise, without splitting or lowercasing copies: every
        /// request asks this.
        init(_ head: HTTPRequestHead) {
            var connection = false
            var upgrade = false
            var versions = 0
            var version13 = false
            var keys = 0
            var key: String?
            for (name, value) in head.headers {
                let bytes = name.utf8
                switch bytes.count {
                case 10 where !connection && HTTPRequestHandler.equalsIgnoringASCIICase(bytes, "connection"):
                    connection = HTTPRequestHandler.listContainsToken(value, "upgrade")
                case 7 where !upgrade && HTTPRequestHandler.equalsIgnoringASCIICase(bytes, "upgrade"):
                    upgrade = HTTPRequestHandler.listContainsToken(value, "websocket")
                case 21 where HTTPRequestHandler.equalsIgnoringASCIICase(bytes, "sec-websocket-version"):
                    versions += 1
                    version13 = value == "13"
                case 17 where HTTPRequestHandler.equalsIgnoringASCIICase(bytes, "sec-websocket-key"):
                    keys += 1
                    key = value
                default:
                    break
                }
            }
            self.isUpgrade = connection && upgrade
            if head.method == .GET, self.isUpgrade, versions == 1, version13, keys == 1 { self.key = key }
        }
    }

    private func receivedBody(context: ChannelHandlerContext, body: ByteBuffer) {
        guard case .post(let head, let server, let socket, var decoder, let error) = self.state else { return }
        guard error == nil else { return }
        self.state = .waiting
        guard self.settings.bodyBudget.reserve(body.readableBytes) else {
            // Slow uploads together hold all the server allows: this one is refused.
            self.releaseBody()
            return self.respondError(
                context: context,
                head: head,
                server: server,
                error: .bodyBudgetExhausted,
                close: true,
                drain: true
            )
        }
        self.heldBodyBytes += body.readableBytes
        do {
            try decoder.append(body)
            self.state = .post(head, server, socket, decoder, nil)
        } catch .payloadTooLarge {
            // Refuse while the body is still arriving, so it is never buffered whole.
            self.refuseLargePost(context: context, head: head, server: server, socket: socket)
        } catch {
            self.state = .post(head, server, socket, decoder, error)
        }
    }

    /// A POST body over `maxPayload`: 413, and the session closes (reason "payload too large").
    private func refuseLargePost(
        context: ChannelHandlerContext,
        head: HTTPRequestHead,
        server: EngineIOServer,
        socket: EngineIOSocket
    ) {
        self.releaseBody()
        socket.eventLoop.execute { socket.session.value.close(reason: .payloadTooLarge) }
        self.state = .waiting
        self.respondError(
            context: context,
            head: head,
            server: server,
            error: .payloadTooLarge,
            close: true,
            drain: true
        )
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        switch self.state {
        case .idle, .waiting, .closing:
            return
        case .drainingThenClose:
            self.state = .closing
            context.close(promise: nil)
        case .answerAtEnd(let head, let route):
            self.state = .waiting
            self.deadline = nil
            self.answer(context: context, head: head, route: route)
        case .post(let head, let server, let socket, var decoder, let error):
            self.state = .waiting
            self.deadline = nil
            self.releaseBody()
            var packets: [EngineIOPacket] = []
            var failure = error
            if failure == nil {
                do {
                    while let packet = try decoder.nextPacket() { packets.append(packet) }
                    packets.append(try decoder.finish())
                } catch {
                    failure = error
                }
            }
            self.finishPost(
                context: context,
                head: head,
                server: server,
                socket: socket,
                packets: packets,
                failure: failure
            )
        }
    }

    // MARK: Answering

    private func answer(context: ChannelHandlerContext, head: HTTPRequestHead, route: Route) {
        switch route {
        case .upgrade(let key, let target, let otherwise):
            let decision: EventLoopFuture<UpgradeDecision>
            if let preset = self.presetDecision {
                self.presetDecision = nil
                decision = context.eventLoop.makeCompletedFuture(preset)
            } else {
                decision = self.upgrader.decide(context.channel, head, target)
            }
            decision.hop(to: context.eventLoop).assumeIsolated()
                .whenComplete { result in
                    guard let context = self.context, case .waiting = self.state else { return }
                    switch (result, otherwise) {
                    case (.success(.accept(let accepted)), _):
                        self.switchProtocols(context: context, key: key, target: target, accepted: accepted)
                    case (.success(.refuse(let error)), .endpoint(let server, _)):
                        // Refused: say why, and end the connection (upgrade requests do not keep
                        // a connection alive).
                        self.respondError(context: context, head: head, server: server, error: error, close: true)
                    case (.success(.refuse), _), (.failure, _):
                        self.answer(context: context, head: head, route: otherwise)
                    }
                }
        case .fallback:
            self.answer(context: context, head: head, route: .file(self.settings.fallback(head)))
        case .file(let response):
            self.respond(
                context: context,
                head: head,
                status: response.status,
                headers: response.headers,
                body: response.body,
                cors: nil,
                close: false
            )
        case .preflight(let server):
            var headers = HTTPHeaders()
            let cors = server.configuration.cors!
            for (name, value) in cors.preflightHeaders(
                requestHeaders: head.headers.first(name: "access-control-request-headers")
            ) {
                headers.add(name: name, value: value)
            }
            self.respond(
                context: context,
                head: head,
                status: .noContent,
                headers: headers,
                body: nil,
                cors: server,
                close: false
            )
        case .error(let error, let server):
            self.respondError(context: context, head: head, server: server, error: error, close: false)
        case .endpoint(let server, .failure(let error)):
            self.respondError(context: context, head: head, server: server, error: error, close: false)
        case .endpoint(let server, .success(let kind)):
            switch kind {
            case .pollingHandshake:
                self.handshake(context: context, head: head, server: server)
            case .poll(let sid):
                self.poll(context: context, head: head, server: server, sid: sid)
            case .websocketHandshake, .websocketUpgrade:
                // Not a valid WebSocket handshake: refuse, and end the connection (upgrade
                // requests do not keep a connection alive).
                let error: EngineIOError = kind == .websocketHandshake ? .badRequest : .unknownSid
                self.respondError(context: context, head: head, server: server, error: error, close: true)
            case .post:
                preconditionFailure("POST routed as a bodiless request")
            }
        }
    }

    private func handshake(context: ChannelHandlerContext, head: HTTPRequestHead, server: EngineIOServer) {
        guard server.hasCapacity else {
            return self.respondError(
                context: context,
                head: head,
                server: server,
                error: .tooManySessions,
                close: false
            )
        }
        let request = HTTPServer.requestInfo(
            head: head,
            channel: context.channel,
            transport: .polling,
            isSecure: self.settings.isSecure
        )
        let loop = context.eventLoop
        server.allowRequest(request, on: loop).assumeIsolated().whenSuccess { ok in
            guard let context = self.context else { return }
            guard ok else {
                return self.respondError(context: context, head: head, server: server, error: .forbidden, close: false)
            }
            let promise = loop.makePromise(of: PollAnswer.self)
            guard
                let session = server.openSession(
                    request: request,
                    eventLoop: loop,
                    websocket: nil,
                    handshakePoll: promise
                )
            else {
                promise.fail(EngineIOError.tooManySessions)
                return self.respondError(
                    context: context,
                    head: head,
                    server: server,
                    error: .tooManySessions,
                    close: false
                )
            }
            var extra = HTTPHeaders()
            if let cookie = server.configuration.cookie {
                extra.add(name: "Set-Cookie", value: cookie.header(sid: session.id))
            }
            promise.futureResult.assumeIsolated().whenComplete { result in
                self.finishPoll(head: head, server: server, result: result, extraHeaders: extra)
            }
        }
    }

    private func poll(context: ChannelHandlerContext, head: HTTPRequestHead, server: EngineIOServer, sid: String) {
        if self.settings.eventLoops.count > 1, server.isUpgrading(sid) {
            // While the session upgrades, its WebSocket's probe and upgrade packets may be read
            // on another loop at the moment this poll is; sent first, they must take effect
            // first (a poll sent after the `5` is refused), as in a single-threaded server.
            Self.afterPendingReads(on: self.settings.eventLoops, from: context.eventLoop).assumeIsolated()
                .whenComplete { _ in
                    guard let context = self.context, case .waiting = self.state else { return }
                    self.startPoll(context: context, head: head, server: server, sid: sid)
                }
        } else {
            self.startPoll(context: context, head: head, server: server, sid: sid)
        }
    }

    private func startPoll(context: ChannelHandlerContext, head: HTTPRequestHead, server: EngineIOServer, sid: String) {
        guard let (socket, turn) = server.sessionForRequest(id: sid) else {
            return self.respondError(context: context, head: head, server: server, error: .unknownSid, close: false)
        }
        let promise = context.eventLoop.makePromise(of: PollAnswer.self)
        // Remember the poll so that a dropped connection can abort it; the session ignores a
        // token that is no longer the one it holds.
        let token = Self.pollTokens.add(1, ordering: .relaxed).newValue
        self.pendingPoll = (server, socket, token)
        let register: @Sendable () -> Void = {
            let session = socket.session.value
            session.inTurn(turn) { session.pollReceived(promise: promise, token: token) }
        }
        if socket.eventLoop.inEventLoop { register() } else { socket.eventLoop.execute(register) }
        promise.futureResult.assumeIsolated().whenComplete { result in
            self.pendingPoll = nil
            self.finishPoll(head: head, server: server, result: result, extraHeaders: HTTPHeaders())
        }
    }

    private func finishPoll(
        head: HTTPRequestHead,
        server: EngineIOServer,
        result: Result<PollAnswer, any Error>,
        extraHeaders: HTTPHeaders
    ) {
        guard let context = self.context, context.channel.isActive else { return }
        switch result {
        case .success(let answer):
            var body = context.channel.allocator.buffer(capacity: 64)
            EngineIOPayloadEncoder.encode(answer.packets, into: &body)
            var headers = extraHeaders
            headers.add(name: "Content-Type", value: "text/plain; charset=UTF-8")
            if answer.compress, let threshold = server.configuration.httpCompressionThreshold,
                body.readableBytes >= threshold,
                let coding = HTTPBodyCompressor.preferredCoding(
                    acceptEncoding: head.headers[canonicalForm: "accept-encoding"].map(String.init)
                ),
                let compressed = HTTPBodyCompressor.compress(body, coding: coding)
            {
                body = compressed
                headers.add(name: "Content-Encoding", value: coding.rawValue)
                headers.add(name: "Vary", value: "Accept-Encoding")
            }
            self.respond(
                context: context,
                head: head,
                status: .ok,
                headers: headers,
                body: body,
                cors: server,
                close: false
            )
        case .failure(let error as EngineIOError):
            self.respondError(context: context, head: head, server: server, error: error, close: false)
        case .failure:
            context.close(promise: nil)
        }
    }

    private func finishPost(
        context: ChannelHandlerContext,
        head: HTTPRequestHead,
        server: EngineIOServer,
        socket: EngineIOSocket,
        packets: [EngineIOPacket],
        failure: EngineIOCodecError?
    ) {
        let promise = context.eventLoop.makePromise(of: EngineIOError?.self)
        let apply: @Sendable () -> Void = {
            // The POST takes effect now: its turn among the session's requests is taken here.
            let turn = server.turn(of: socket)
            let work: @Sendable () -> Void = {
                let session = socket.session.value
                session.inTurn(turn) { Self.applyPost(packets, failure: failure, to: session, promise: promise) }
            }
            if socket.eventLoop.inEventLoop { work() } else { socket.eventLoop.execute(work) }
        }
        if self.settings.eventLoops.count > 1, packets.contains(.close) || server.isUpgrading(socket.id) {
            // A close ends the session for every request after it; one that reached another
            // event loop at the same moment (a long-poll sent with it) must still take effect
            // first, as in a single-threaded server, where a POST's body is applied only after
            // the requests read with it. Likewise the packets of an upgrading WebSocket sent
            // before this POST. So every loop first reads what has arrived, then the POST takes
            // its turn.
            Self.afterPendingReads(on: self.settings.eventLoops, from: context.eventLoop).whenComplete { _ in apply() }
        } else {
            apply()
        }
        promise.futureResult.assumeIsolated().whenSuccess { error in
            guard let context = self.context else { return }
            if let error {
                self.respondError(context: context, head: head, server: server, error: error, close: false)
            } else {
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "text/plain; charset=UTF-8")
                self.respond(
                    context: context,
                    head: head,
                    status: .ok,
                    headers: headers,
                    body: ByteBuffer(string: "ok"),
                    cors: server,
                    close: false
                )
            }
        }
    }

    /// Completes on `loop` once every loop of `loops` has handled the reads that were pending
    /// when it was called: a task runs after the I/O that woke its loop, and a loop that was
    /// busy runs it within its current tick, before it polls again, hence a few rounds (3: none
    /// of 1 000 simultaneous poll-and-close pairs was misordered in the debug build, against 10
    /// of 500 with 2). Only closes and the requests of an upgrading session wait for it (once or
    /// twice per session), so its cost, a few hops between loops, is paid rarely.
    private static func afterPendingReads(
        on loops: [any EventLoop],
        from loop: any EventLoop,
        rounds: Int = 3
    ) -> EventLoopFuture<Void> {
        guard rounds > 0 else { return loop.makeSucceededVoidFuture() }
        return EventLoopFuture.andAllComplete(loops.map { $0.submit {} }, on: loop).flatMap {
            Self.afterPendingReads(on: loops, from: loop, rounds: rounds - 1)
        }
    }

    /// Applies a POST's packets to its session (on the session's loop, in its turn); `promise`
    /// gets the error to answer with, or `nil` for `ok`.
    static func applyPost(
        _ packets: [EngineIOPacket],
        failure: EngineIOCodecError?,
        to session: EngineIOSession,
        promise: EventLoopPromise<EngineIOError?>
    ) {
        if failure != nil {
            // An undecodable payload closes the session (reason "parse error").
            session.close(reason: .parseError)
            promise.succeed(.badRequest)
            return
        }
        switch session.postReceived() {
        case .accepted:
            session.postFinished(packets)
            promise.succeed(nil)
        case .overlap:
            promise.succeed(.badRequest)
        case .rejected(let error):
            promise.succeed(error)
        }
    }

    /// Accepts a WebSocket handshake: replaces the HTTP handlers with the WebSocket ones, which
    /// send the 101 response together with their first frames (one write with the open packet).
    private func switchProtocols(
        context: ChannelHandlerContext,
        key: String,
        target: UpgradeTarget,
        accepted: AcceptedUpgrade
    ) {
        let response = Self.switchingProtocols(key: key, accepted: accepted, allocator: context.channel.allocator)
        self.state = .closing
        let pipeline = context.pipeline.syncOperations
        do {
            // The HTTP codec and its helpers go (the request decoder holds nothing: a client
            // sends no frame before it has the 101); the WebSocket handlers take their place.
            for http in [
                try pipeline.context(handlerType: NIOHTTPResponseHeadersValidator.self),
                try pipeline.context(handlerType: HTTPServerPipelineHandler.self),
                try pipeline.context(handlerType: HTTPResponseEncoder.self),
                try pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self),
            ] {
                pipeline.removeHandler(context: http, promise: nil)
            }
            try self.upgrader.install(context.channel, target, accepted, response)
            pipeline.removeHandler(context: context, promise: nil)
        } catch {
            self.settings.logger.debug("WebSocket upgrade failed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    /// The 101 response to an accepted WebSocket handshake.
    static func switchingProtocols(key: String, accepted: AcceptedUpgrade, allocator: ByteBufferAllocator) -> ByteBuffer
    {
        var response = allocator.buffer(capacity: 160)
        response.writeStaticString(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
        )
        response.writeString(WebSocketAccept.value(forKey: key[...]))
        response.writeStaticString("\r\n")
        for (name, value) in accepted.headers {
            response.writeString(name)
            response.writeStaticString(": ")
            response.writeString(value)
            response.writeStaticString("\r\n")
        }
        response.writeStaticString("\r\n")
        return response
    }

    // MARK: Writing

    private func respondError(
        context: ChannelHandlerContext,
        head: HTTPRequestHead,
        server: EngineIOServer?,
        error: EngineIOError,
        close: Bool,
        drain: Bool = false
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        self.respond(
            context: context,
            head: head,
            status: HTTPResponseStatus(statusCode: error.httpStatus),
            headers: headers,
            body: ByteBuffer(string: error.jsonBody),
            cors: server,
            close: close,
            drain: drain
        )
    }

    private func respond(
        context: ChannelHandlerContext,
        head: HTTPRequestHead,
        status: HTTPResponseStatus,
        headers: HTTPHeaders,
        body: ByteBuffer?,
        cors server: EngineIOServer?,
        close: Bool,
        drain: Bool = false
    ) {
        // Whatever the client still owed is moot now (a keep-alive connection waits for its
        // next head below).
        self.deadline = nil
        var headers = headers
        if let cors = server?.configuration.cors {
            for (name, value) in cors.headers(origin: head.headers.first(name: "origin")) {
                headers.add(name: name, value: value)
            }
        }
        headers.replaceOrAdd(name: "Content-Length", value: String(body?.readableBytes ?? 0))
        // A declined upgrade request never keeps its connection (the client expected to leave HTTP).
        let keepAlive = head.isKeepAlive && !close && !head.headers.contains(name: "upgrade")
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if head.version.major == 1 && head.version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        let responseHead = HTTPResponseHead(version: head.version, status: status, headers: headers)
        context.write(self.wrapOutboundOut(.head(responseHead)), promise: nil)
        if let body, head.method != .HEAD {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let channel = context.channel
        if keepAlive {
            // Become idle before writing the end: NIO's pipelining handler delivers the next
            // buffered request synchronously from inside that write.
            if case .closing = self.state {
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            self.state = .idle
            self.armHeaderTimer(context: context)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        } else if drain {
            // Read and drop what the client is still sending, for at most `closeLinger`.
            self.state = .drainingThenClose
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            context.eventLoop.scheduleTask(in: Self.closeLinger) { channel.close(promise: nil) }
        } else {
            self.state = .closing
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// How long a connection that is being closed after an error keeps reading, so that the
    /// client receives the error instead of a connection reset.
    static let closeLinger: TimeAmount = .seconds(2)

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A request the codec in front refused (NIO's parser, or HTTPSimpleCodec's limits):
        // answer and end the connection, which cannot be read any further. (Both codecs deliver
        // such errors only once earlier responses are complete, and this handler writes each
        // response whole, so no response is ever half-written here; this is what NIO's
        // HTTPServerProtocolErrorHandler did, without a handler of its own in every connection's
        // pipeline.)
        guard let refusal = HTTPRequestError.answering(error) else { return }
        self.deadline = nil
        switch self.state {
        case .post(let head, let server, let socket, _, _) where refusal.status == .payloadTooLarge:
            // A chunked POST over the limits: as for any POST body over `maxPayload`.
            self.refuseLargePost(context: context, head: head, server: server, socket: socket)
        case .closing, .drainingThenClose:
            // A response is already out (or the connection is going anyway): just end it.
            self.releaseBody()
            self.state = .closing
            context.close(promise: nil)
        case .idle, .answerAtEnd, .post, .waiting:
            self.releaseBody()
            self.state = .closing
            let headers = HTTPHeaders([("Connection", "close"), ("Content-Length", "0")])
            context.write(
                self.wrapOutboundOut(
                    .head(HTTPResponseHead(version: .http1_1, status: refusal.status, headers: headers))
                ),
                promise: nil
            )
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            context.close(promise: nil)
        }
    }

    /// Whether the comma-separated `list` has `token` among its items (spaces and tabs around
    /// items ignored, ASCII case ignored). `token` is lowercase ASCII.
    static func listContainsToken(_ list: String, _ token: StaticString) -> Bool {
        let bytes = list.utf8
        var start = bytes.startIndex
        while start != bytes.endIndex {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.endIndex
            var first = start
            var last = end
            while first != last, bytes[first] == 0x20 || bytes[first] == 0x09 { bytes.formIndex(after: &first) }
            while first != last {
                let before = bytes.index(before: last)
                guard bytes[before] == 0x20 || bytes[before] == 0x09 else { break }
                last = before
            }
            if Self.equalsIgnoringASCIICase(bytes[first..<last], token) { return true }
            start = end == bytes.endIndex ? end : bytes.index(after: end)
        }
        return false
    }

    /// Whether `text` is `lowercase` in any ASCII case.
    static func equalsIgnoringASCIICase(_ text: some Collection<UInt8>, _ lowercase: StaticString) -> Bool {
        guard text.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            zip(text, expected).allSatisfy { byte, want in
                byte == want || (byte | 0x20) == want && want >= 0x61 && want <= 0x7A
            }
        }
    }

    /// Whether `text` starts with `lowercase` in any ASCII case.
    static func hasPrefixIgnoringASCIICase(_ text: String, _ lowercase: StaticString) -> Bool {
        let bytes = text.utf8
        guard bytes.count >= lowercase.utf8CodeUnitCount else { return false }
        return Self.equalsIgnoringASCIICase(bytes.prefix(lowercase.utf8CodeUnitCount), lowercase)
    }

    static func matches(path: Substring, endpoint: String) -> Bool {
        // Byte-wise (as Node compares paths): `hasPrefix` compares grapheme by grapheme.
        if path.utf8.starts(with: endpoint.utf8) { return true }
        // `/socket.io` without the trailing slash names the endpoint too.
        return endpoint.utf8.last == UInt8(ascii: "/") && path.utf8.elementsEqual(endpoint.utf8.dropLast())
    }
}

@available(*, unavailable)
extension HTTPRequestHandler: Sendable {}

/// Where an accepted WebSocket goes.
enum UpgradeTarget {
    /// The plain echo of the `websocket-echo` profile.
    case echo
    /// A new Engine.IO session over WebSocket.
    case handshake(EngineIOServer)
    /// The upgrade of an existing (long-polling) session.
    case upgrade(EngineIOServer, sid: String)
}

/// What an accepted WebSocket handshake carries to the new connection.
struct AcceptedUpgrade: Sendable {
    /// The 101's extra headers (permessage-deflate's answer, the sid cookie).
    var headers = HTTPHeaders()
    /// The permessage-deflate parameters agreed on, if any.
    var deflate: PerMessageDeflateParameters?
    /// The session id announced in the cookie, when the cookie is on.
    var sessionID: String?
    /// The request, as `allowRequest` saw it (new sessions only).
    var request: EngineIORequestInfo?
}

/// The endpoint's answer to a WebSocket handshake.
enum UpgradeDecision: Sendable {
    case accept(AcceptedUpgrade)
    case refuse(EngineIOError)
}
