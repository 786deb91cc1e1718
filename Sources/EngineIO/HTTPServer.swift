import EngineIOCore
public import Logging
import NIOConcurrencyHelpers
public import NIOCore
public import NIOHTTP1
import NIOPosix
import NIOWebSocket
public import PerMessageDeflate

/// An HTTP response for a request outside every Engine.IO endpoint.
public struct HTTPFallbackResponse: Sendable {
    /// The status.
    public var status: HTTPResponseStatus
    /// The headers (`Content-Length` is added).
    public var headers: HTTPHeaders
    /// The body, if any.
    public var body: ByteBuffer?

    /// Creates a response.
    ///
    /// - Parameters:
    ///   - status: the status.
    ///   - headers: the headers.
    ///   - body: the body.
    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: ByteBuffer? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A plain-text `404 Not Found`.
    public static let notFound = HTTPFallbackResponse(
        status: .notFound,
        headers: ["Content-Type": "text/plain; charset=UTF-8"],
        body: ByteBuffer(string: "Not Found")
    )
}

/// A plain WebSocket echo endpoint (see ``HTTPServer/Configuration/webSocketEcho``).
public struct WebSocketEchoConfiguration: Sendable {
    /// The exact path (default `/`).
    public var path: String = "/"
    /// The largest message, in bytes (default 64 MiB, enough for Autobahn's 16 MiB cases).
    public var maxMessageSize: Int = 64 << 20
    /// permessage-deflate options.
    public var perMessageDeflate = PerMessageDeflateConfiguration()

    /// Creates the defaults.
    public init() {}
}

/// The HTTP/1.1 server that carries one or more Engine.IO endpoints on one port.
///
/// It owns the listening socket and its connections: HTTP/1.1 (keep-alive, pipelining, chunked
/// bodies) with request heads, bodies and the time to send them bounded (see ``Configuration``),
/// WebSocket upgrades, and graceful shutdown. ``run(onListening:)`` serves until its task is
/// cancelled.
public final class HTTPServer: Sendable {
    /// Options of the HTTP server.
    public struct Configuration: Sendable {
        /// The address to bind. Default `0.0.0.0` (all IPv4 interfaces, as Node listens on all).
        public var host: String = "0.0.0.0"
        /// The port to bind; 0 picks a free one. Default 3000.
        public var port: Int = 3000
        /// Time a client has, from connecting or from the end of the previous response, to send a
        /// complete request head; slower clients (slowloris) are disconnected. Default 10 s:
        /// browsers send a whole head in one write, so only stalled or hostile clients hit it.
        public var requestHeaderTimeout: TimeAmount = .seconds(10)
        /// The longest request head, in bytes (the request line and header lines); a longer one
        /// is answered 431 and its connection closed, without buffering more of it. Default
        /// 16 KiB, Node's `maxHeaderSize`: a browser's heads are well under 2 KiB, and a
        /// stalled head holds at most this much until ``requestHeaderTimeout``.
        public var maxRequestHeadSize: Int = 16 * 1024
        /// Time a client has, from the end of a request head, to send all of its body; a slower
        /// one is answered 408 and its connection closed. Default 30 s: a body of the default
        /// `maxPayload` (1 MB) arrives in time at 35 KB/s, while a stalled upload no longer holds
        /// its connection and bytes for ever. (Node's `requestTimeout`, 300 s, counts the head
        /// too.)
        public var requestBodyTimeout: TimeAmount = .seconds(30)
        /// The most bytes that long-polling POST bodies still being received may hold together,
        /// across every connection; the body that would exceed it is answered 503 (and its
        /// connection closed), the others go on. Default 32 MiB (32 bodies of the default
        /// `maxPayload` at once): ordinary polling bodies are a few hundred bytes and are read
        /// within milliseconds, so only many slow uploads at once reach it, and those are what
        /// it stops. Node has no such bound.
        public var maxBufferedRequestBodyBytes: Int = 32 << 20
        /// Longest time shutdown waits for sessions to be told before connections are closed.
        /// Default 5 s.
        public var shutdownTimeout: TimeAmount = .seconds(5)
        /// Answers requests outside every endpoint. Default `404 Not Found`.
        public var fallback: @Sendable (HTTPRequestHead) -> HTTPFallbackResponse = { _ in .notFound }
        /// Consulted first for GET and HEAD requests: a response here wins over the endpoints (for
        /// example the client bundle at `/socket.io/socket.io.min.js`). Default none.
        public var files: (@Sendable (HTTPRequestHead) -> HTTPFallbackResponse?)? = nil
        /// The event loops to run on, or `nil` for NIO's shared group (one thread per core).
        public var eventLoopGroup: (any EventLoopGroup)? = nil
        /// The logger for lifecycle messages.
        public var logger = Logger(label: "socketio-server")
        /// Called first for every accepted connection, before the HTTP handlers: the place for a
        /// TLS handler. Default none.
        public var connectionPrologue: (@Sendable (any Channel) throws -> Void)? = nil
        /// Whether connections are secure (TLS); reported in `EngineIORequestInfo.isSecure`.
        /// Default `false`.
        public var isSecure: Bool = false
        /// A plain WebSocket echo endpoint (no Engine.IO) at this exact path, built from the same
        /// WebSocket stack (RFC 6455 checks, permessage-deflate), for checking that layer on its
        /// own (Autobahn). Default none.
        public var webSocketEcho: WebSocketEchoConfiguration? = nil

        /// Creates a configuration with the defaults.
        public init() {}
    }

    struct Settings: Sendable {
        var requestHeaderTimeout: TimeAmount
        var requestBodyTimeout: TimeAmount
        var limits: HTTPRequestLimits
        var bodyBudget: RequestBodyBudget
        /// Every event loop of the server (see ``HTTPRequestHandler``'s close barrier).
        var eventLoops: [any EventLoop] = []
        var isSecure: Bool
        var fallback: @Sendable (HTTPRequestHead) -> HTTPFallbackResponse
        var files: (@Sendable (HTTPRequestHead) -> HTTPFallbackResponse?)?
        var logger: Logger
    }

    /// The server's options.
    public let configuration: Configuration
    /// The endpoints, matched by path prefix in order.
    public let endpoints: [EngineIOServer]
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    /// Creates a server.
    ///
    /// - Parameters:
    ///   - configuration: HTTP options.
    ///   - endpoints: the Engine.IO endpoints to serve.
    public init(configuration: Configuration, endpoints: [EngineIOServer]) {
        self.configuration = configuration
        self.endpoints = endpoints
    }

    /// Binds and serves until the calling task is cancelled, then shuts down gracefully: stops
    /// accepting, closes every session with a close packet (pending long-polls are answered),
    /// then closes the remaining connections.
    ///
    /// - Parameter onListening: called once with the bound address.
    /// - Throws: when binding fails.
    public func run(onListening: @Sendable (SocketAddress) -> Void = { _ in }) async throws {
        let group = self.configuration.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        var base = Settings(
            requestHeaderTimeout: self.configuration.requestHeaderTimeout,
            requestBodyTimeout: self.configuration.requestBodyTimeout,
            limits: HTTPRequestLimits(
                maxHeadSize: self.configuration.maxRequestHeadSize,
                maxBodySize: self.endpoints.map(\.configuration.maxPayload).max() ?? 1_000_000
            ),
            bodyBudget: RequestBodyBudget(limit: self.configuration.maxBufferedRequestBodyBytes),
            isSecure: self.configuration.isSecure,
            fallback: self.configuration.fallback,
            files: self.configuration.files,
            logger: self.configuration.logger
        )
        base.eventLoops = Array(group.makeIterator())
        let settings = base
        let maxFrameSize = max(
            (self.endpoints.map { $0.configuration.maxPayload } + [
                self.configuration.webSocketEcho?.maxMessageSize ?? 0
            ])
            .max() ?? 1 << 20,
            126
        )
        // Made once for every connection (closures allocated per connection showed up).
        let upgrader = HTTPRequestHandler.WebSocketUpgrader(
            decide: { channel, head, target in
                self.decideUpgrade(channel: channel, head: head, target: target)
            },
            install: { channel, target, accepted, response in
                try self.installWebSocket(
                    channel: channel,
                    target: target,
                    accepted: accepted,
                    maxFrameSize: maxFrameSize,
                    response: response
                )
            }
        )
        let echoPath = self.configuration.webSocketEcho?.path
        let acceptsWebSocket: @Sendable (Substring) -> Bool = { path in path == echoPath?[...] }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // One `accept` per readiness event: with one connection pending (the usual case),
            // NIO's default of 4 made a second `accept` per connection that found none.
            .serverChannelOption(.maxMessagesPerRead, value: 1)
            // TCP_NODELAY: ServerBootstrap sets it on the listening socket and Linux hands it down
            // to accepted sockets, so no extra system call per connection. The per-connection
            // options are set in `initialize` (synchronously: ServerBootstrap applies child options
            // through a chain of futures, 2 % of a connection in the profile).
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initialize(
                        channel: channel,
                        settings: settings,
                        upgrader: upgrader,
                        acceptsWebSocket: acceptsWebSocket
                    )
                }
            }
        let listener = try await bootstrap.bind(host: self.configuration.host, port: self.configuration.port).get()
        if let address = listener.localAddress {
            self.configuration.logger.info("listening", metadata: ["address": "\(address)"])
            onListening(address)
        }
        await withTaskCancellationHandler {
            try? await listener.closeFuture.get()
        } onCancel: {
            listener.close(promise: nil)
        }
        await self.shutdown()
    }

    private func shutdown() async {
        let logger = self.configuration.logger
        logger.info("shutting down", metadata: ["sessions": "\(self.endpoints.map(\.sessionCount).reduce(0, +))"])
        let futures = self.endpoints.compactMap { $0.closeAllSessions(reason: .serverShutdown) }
        if !futures.isEmpty {
            let all = EventLoopFuture.andAllComplete(futures, on: futures[0].eventLoop)
            let timeout = self.configuration.shutdownTimeout
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await all.get() }
                group.addTask { try? await Task.sleep(nanoseconds: UInt64(timeout.nanoseconds)) }
                await group.next()
                group.cancelAll()
            }
        }
        let open = self.connections.withLockedValue { Array($0.values) }
        for channel in open {
            channel.eventLoop.execute { channel.close(promise: nil) }
        }
        for channel in open {
            try? await channel.closeFuture.get()
        }
        logger.info("stopped")
    }

    /// Every connection's read-buffer sizing (see `initialize`).
    private static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65_536)

    private func initialize(
        channel: any Channel,
        settings: Settings,
        upgrader: HTTPRequestHandler.WebSocketUpgrader,
        acceptsWebSocket: @escaping @Sendable (Substring) -> Bool
    ) throws {
        if let options = channel.syncOptions {
            try options.setOption(.maxMessagesPerRead, value: 16)
            // Reads start at 512 bytes and adapt (up to 64 KiB): an idle connection keeps its last
            // read buffer for reuse, and NIO's 2 KiB default was a quarter of an idle socket's memory.
            try options.setOption(.recvAllocator, value: Self.receiveAllocator)
        }
        let id = ObjectIdentifier(channel)
        self.connections.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            _ = self.connections.withLockedValue { $0.removeValue(forKey: id) }
        }
        try self.configuration.connectionPrologue?(channel)
        // NIO's HTTP codec and HTTPRequestHandler are added by this handler, unless the
        // connection opens with a WebSocket handshake it serves itself.
        try channel.pipeline.syncOperations.addHandler(
            HTTPFirstRequestHandler(
                endpoints: self.endpoints,
                settings: settings,
                upgrader: upgrader,
                acceptsWebSocket: acceptsWebSocket
            )
        )
    }

    /// Whether a WebSocket handshake may proceed: the 101's extra headers and what the new
    /// connection needs, or why not.
    private func decideUpgrade(
        channel: any Channel,
        head: HTTPRequestHead,
        target: UpgradeTarget
    ) -> EventLoopFuture<UpgradeDecision> {
        let loop = channel.eventLoop
        /// An acceptance with permessage-deflate's answer, when the client offered it.
        func accept(_ deflate: PerMessageDeflateConfiguration, _ logger: Logger) -> AcceptedUpgrade {
            var accepted = AcceptedUpgrade()
            accepted.deflate = Self.negotiateDeflate(
                head: head,
                configuration: deflate,
                logger: logger,
                headers: &accepted.headers
            )
            return accepted
        }
        switch target {
        case .echo:
            let echo = self.configuration.webSocketEcho ?? WebSocketEchoConfiguration()
            return loop.makeSucceededFuture(.accept(accept(echo.perMessageDeflate, self.configuration.logger)))
        case .upgrade(let server, let sid):
            // From now on, polling requests of the session first let every loop read what has
            // arrived (see HTTPRequestHandler), so that the WebSocket's probe and upgrade packets,
            // sent before them, take effect before them.
            guard server.setUpgrading(sid, true) else { return loop.makeSucceededFuture(.refuse(.unknownSid)) }
            let accepted = accept(server.configuration.perMessageDeflate, server.configuration.logger)
            return loop.makeSucceededFuture(.accept(accepted))
        case .handshake(let server):
            guard server.hasCapacity else { return loop.makeSucceededFuture(.refuse(.tooManySessions)) }
            var accepted = accept(server.configuration.perMessageDeflate, server.configuration.logger)
            if let cookie = server.configuration.cookie {
                // The id is chosen now so that the 101 response can carry the sid cookie.
                let id = server.configuration.sessionIDGenerator()
                accepted.sessionID = id
                accepted.headers.add(name: "Set-Cookie", value: cookie.header(sid: id))
            }
            let request = Self.requestInfo(
                head: head,
                channel: channel,
                transport: .websocket,
                isSecure: self.configuration.isSecure
            )
            accepted.request = request
            let decision = accepted
            return server.allowRequest(request, on: loop).map { ok in ok ? .accept(decision) : .refuse(.forbidden) }
        }
    }

    /// RFC 7692 negotiation for an accepted upgrade: adds the response header and returns the
    /// parameters for the pipeline, when the client offered something acceptable.
    static func negotiateDeflate(
        head: HTTPRequestHead,
        configuration: PerMessageDeflateConfiguration,
        logger: Logger,
        headers: inout HTTPHeaders
    ) -> PerMessageDeflateParameters? {
        // The values as sent: the negotiation splits them on commas itself, outside quoted strings.
        let offers = head.headers["sec-websocket-extensions"]
        guard !offers.isEmpty,
            let (response, parameters) = PerMessageDeflateNegotiation.negotiate(
                headerValues: offers,
                configuration: configuration
            )
        else { return nil }
        headers.add(name: "Sec-WebSocket-Extensions", value: response)
        logger.debug(
            "permessage-deflate negotiated",
            metadata: ["offer": "\(offers.joined(separator: ", "))", "response": "\(response)"]
        )
        return parameters
    }

    /// permessage-deflate for an accepted handshake, when it agreed on it: the inflater the message
    /// handler uses (inflated messages capped at `maxMessageSize`) and the handler that compresses
    /// what is sent.
    static func deflate(
        _ parameters: PerMessageDeflateParameters?,
        _ configuration: PerMessageDeflateConfiguration,
        maxMessageSize: Int,
        on channel: any Channel
    ) -> (inflater: PerMessageDeflateInflater, compressor: PerMessageDeflateHandler)? {
        guard let parameters else { return nil }
        var configuration = configuration
        configuration.maxDecompressedSize = maxMessageSize
        return (
            PerMessageDeflateInflater(
                parameters: parameters,
                configuration: configuration,
                eventLoop: channel.eventLoop
            ),
            PerMessageDeflateHandler(parameters: parameters, configuration: configuration)
        )
    }

    /// ``deflate(_:_:maxMessageSize:on:)`` with an endpoint's options (messages up to its
    /// `maxPayload`).
    static func deflate(
        _ server: EngineIOServer,
        _ parameters: PerMessageDeflateParameters?,
        on channel: any Channel
    ) -> (inflater: PerMessageDeflateInflater, compressor: PerMessageDeflateHandler)? {
        Self.deflate(
            parameters,
            server.configuration.perMessageDeflate,
            maxMessageSize: server.configuration.maxPayload,
            on: channel
        )
    }

    /// Adds the WebSocket handlers at the end of the pipeline (the HTTP handlers are being
    /// removed): the frame writer, the message handler (which parses frames itself), then the
    /// permessage-deflate handler, which compresses what is written from the pipeline's end.
    /// `response` is the 101, which goes out with the first frames.
    private func installWebSocket(
        channel: any Channel,
        target: UpgradeTarget,
        accepted: AcceptedUpgrade,
        maxFrameSize: Int,
        response: ByteBuffer
    ) throws {
        let sync = channel.pipeline.syncOperations
        try WebSocketRawWriter.install(in: channel)
        let handler: EngineIOWebSocketHandler
        let deflate: (inflater: PerMessageDeflateInflater, compressor: PerMessageDeflateHandler)?
        switch target {
        case .echo:
            let echo = self.configuration.webSocketEcho ?? WebSocketEchoConfiguration()
            deflate = Self.deflate(
                accepted.deflate,
                echo.perMessageDeflate,
                maxMessageSize: echo.maxMessageSize,
                on: channel
            )
            handler = EngineIOWebSocketHandler(
                echoWithMaxMessageSize: echo.maxMessageSize,
                maxFrameSize: maxFrameSize,
                inflater: deflate?.inflater,
                responsePrefix: response
            )
        case .upgrade(let server, let sid):
            deflate = Self.deflate(server, accepted.deflate, on: channel)
            handler = EngineIOWebSocketHandler(
                server: server,
                mode: .upgrade(sid: sid),
                maxFrameSize: maxFrameSize,
                inflater: deflate?.inflater,
                responsePrefix: response
            )
        case .handshake(let server):
            guard let request = accepted.request else { throw ChannelError.inappropriateOperationForState }
            deflate = Self.deflate(server, accepted.deflate, on: channel)
            handler = EngineIOWebSocketHandler(
                server: server,
                mode: .handshake(request, sessionID: accepted.sessionID),
                maxFrameSize: maxFrameSize,
                inflater: deflate?.inflater,
                responsePrefix: response
            )
        }
        try sync.addHandler(handler)
        // After the message handler: it compresses what is written from the pipeline's end.
        if let compressor = deflate?.compressor { try sync.addHandler(compressor) }
    }

    static func requestInfo(
        head: HTTPRequestHead,
        channel: any Channel,
        transport: EngineIOTransport,
        isSecure: Bool
    ) -> EngineIORequestInfo {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return EngineIORequestInfo(
            method: head.method,
            uri: head.uri,
            query: EngineIOQuery(uri: head.uri),
            // A compact copy: the decoder's array has room for many more headers, and the
            // request info lives as long as the session.
            headers: HTTPHeaders(head.headers.map { ($0.name, $0.value) }),
            remoteAddress: channel.remoteAddress,
            isSecure: isSecure,
            issuedAtMilliseconds: Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000,
            transport: transport
        )
    }
}
