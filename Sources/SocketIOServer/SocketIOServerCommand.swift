import ArgumentParser
import Dispatch
import EngineIO
import EngineIOCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenSSLTLS
import PerMessageDeflate
import SocketIO
import SocketIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `socketio-server` command.
@main
struct SocketIOServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "socketio-server",
        abstract: "A Socket.IO v5 / Engine.IO v4 server on SwiftNIO.",
        discussion: """
            Profiles:

            default: the chat app: its page at / and its Socket.IO server at --path (default /socket.io/). The page loads the socket.io client from <path>socket.io.min.js when --client-bundle is given, from the official CDN otherwise. Every option applies.

            demo: the demo app of the conformance profile (namespaces / and /custom: 'auth' with the client's auth on connect; on /, 'message' answered with 'message-back' and 'message-with-ack' acked with its arguments) at --path. Every option applies.

            engineio-echo: a bare Engine.IO v4 echo at --path (every message goes back as it came), to test or measure the transport layer alone. Every option applies.

            interop: the test contract of the real-client harness (shared/realclients: welcome, echo, ack, rooms, broadcast, server-ack, disconnect-me on /; /chat; /private refusing without auth.token 'letmein', with data {hint}; plus echoing namespaces /ns-N) at --path, with pingInterval 1000 ms and pingTimeout 2000 ms unless given, and CORS for any origin unless --cors-origin is given. Every option applies.

            bench: the benchmark app on / at --path: 'echo' acknowledged with its arguments, 'join(room)' joins and acknowledges true, 'broadcast(room, payload)' emits 'bcast(payload)' to the room (sender included) and acknowledges true. Every option applies.

            websocket-echo: a plain WebSocket echo at ws://HOST:PORT/ (no Engine.IO), built from the same WebSocket stack (RFC 6455 checks, permessage-deflate), for WebSocket conformance suites such as Autobahn. Messages up to --max-payload if given, else 64 MiB. --no-deflate turns compression off.

            conformance: what external protocol suites expect: 127.0.0.1 only, a bare Engine.IO echo at /engine.io/ and the demo app at /socket.io/, pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1000000, connect timeout 1000 ms, CORS for any origin. Only --port and --log-level apply.

            The server stops gracefully on SIGTERM or SIGINT: it stops accepting, closes every session with a close packet (pending long-polls are answered), then exits.
            """
    )

    enum Profile: String, ExpressibleByArgument, CaseIterable {
        case `default`
        case conformance
        case engineioEcho = "engineio-echo"
        case interop
        case demo
        case websocketEcho = "websocket-echo"
        case bench
    }

    @Option(help: "Server profile: \(Profile.allCases.map(\.rawValue).joined(separator: ", ")).")
    var profile: Profile = .default

    @Option(help: "Address to bind.")
    var host: String = "0.0.0.0"

    @Option(help: "Port to bind (0 picks a free port).")
    var port: Int = 3000

    @Option(help: "URL path of the Engine.IO endpoint.")
    var path: String = "/socket.io/"

    @Option(
        name: .customLong("cors-origin"),
        help: "Allow cross-origin requests from this origin (repeatable; '*' allows any). Default: no CORS headers."
    )
    var corsOrigins: [String] = []

    @Flag(name: .customLong("cors-credentials"), help: "Send Access-Control-Allow-Credentials: true.")
    var corsCredentials = false

    @Option(name: .customLong("ping-interval"), help: "Milliseconds between heartbeat pings (default 25000).")
    var pingIntervalOption: Int64?

    @Option(name: .customLong("ping-timeout"), help: "Milliseconds a client has to answer a ping (default 20000).")
    var pingTimeoutOption: Int64?

    var pingInterval: Int64 { self.pingIntervalOption ?? 25_000 }
    var pingTimeout: Int64 { self.pingTimeoutOption ?? 20_000 }
    var pingIntervalGiven: Bool { self.pingIntervalOption != nil }
    var pingTimeoutGiven: Bool { self.pingTimeoutOption != nil }

    @Option(name: .customLong("upgrade-timeout"), help: "Milliseconds a polling -> WebSocket upgrade may take.")
    var upgradeTimeout: Int64 = 10_000

    @Option(
        name: .customLong("max-payload"),
        help:
            "Largest message or POST body in bytes (maxHttpBufferSize, default 1000000); larger gets 413 / close 1009."
    )
    var maxPayloadOption: Int?

    var maxPayload: Int { self.maxPayloadOption ?? 1_000_000 }
    var maxPayloadGiven: Bool { self.maxPayloadOption != nil }

    @Option(help: "Enabled transports, comma-separated: polling,websocket.")
    var transports: String = "polling,websocket"

    @Flag(inversion: .prefixedNo, help: "Allow polling sessions to upgrade to WebSocket.")
    var allowUpgrades = true

    @Flag(help: "Set the 'io' session cookie on handshakes (for sticky load balancers).")
    var cookie = false

    @Option(name: .customLong("max-sessions"), help: "Most concurrent sessions; more handshakes get 503.")
    var maxSessions: Int = 100_000

    @Option(
        name: .customLong("max-buffered-packets"),
        help: "Most packets waiting for a long-poll before the session is closed."
    )
    var maxBufferedPackets: Int = 10_000

    @Option(
        name: .customLong("request-header-timeout"),
        help: "Milliseconds a client has to send a complete request head."
    )
    var requestHeaderTimeout: Int64 = 10_000

    @Option(
        name: .customLong("max-http-header-size"),
        help: "Longest request head in bytes (Node's maxHeaderSize); longer gets 431."
    )
    var maxHTTPHeaderSize: Int = 16 * 1024

    @Option(
        name: .customLong("request-body-timeout"),
        help: "Milliseconds a client has, after a request head, to send its body; slower gets 408."
    )
    var requestBodyTimeout: Int64 = 30_000

    @Option(
        name: .customLong("max-buffered-body-bytes"),
        help: "Most bytes that POST bodies still arriving may hold together (all connections); more gets 503."
    )
    var maxBufferedBodyBytes: Int = 32 << 20

    @Option(
        name: .customLong("connect-timeout"),
        help: "Milliseconds a new connection has to join a namespace before it is closed."
    )
    var connectTimeout: Int64 = 45_000

    @Option(name: .customLong("ack-timeout"), help: "Default milliseconds emitWithAck waits for an answer.")
    var ackTimeout: Int64 = 30_000

    @Option(name: .customLong("max-attachments"), help: "Most binary attachments per Socket.IO packet.")
    var maxAttachments: Int = 64

    @Option(
        name: .customLong("max-attachment-bytes"),
        help: "Most bytes the attachments of one Socket.IO packet may add up to."
    )
    var maxAttachmentBytes: Int = 10_000_000

    @Option(
        name: .customLong("attachment-timeout"),
        help: "Milliseconds the binary attachments of a Socket.IO packet may take to arrive."
    )
    var attachmentTimeout: Int64 = 30_000

    @Option(
        name: .customLong("static"),
        help: "Serve the files of this directory under /static/ (repeatable; loaded at startup, 64 MiB at most)."
    )
    var staticDirectories: [String] = []

    @Option(
        name: .customLong("client-bundle"),
        help: "Serve this socket.io client bundle at <path>socket.io.min.js (like Node's serveClient)."
    )
    var clientBundle: String?

    @Flag(
        inversion: .prefixedNo,
        help: "Accept WebSocket permessage-deflate (RFC 7692), without context takeover (on by default)."
    )
    var deflate = true

    @Option(
        name: .customLong("deflate-threshold"),
        help: "Smallest message, in bytes, that is compressed (default 1024)."
    )
    var deflateThreshold: Int = 1024

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve https and wss (with --tls-key).")
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key (RSA or ECDSA) of --tls-cert.")
    var tlsKey: String?

    @Option(
        name: .customLong("tls-sni"),
        help: "Another certificate for one server name (SNI), as NAME:CERT:KEY (repeatable)."
    )
    var tlsSNI: [String] = []

    @Option(
        name: .customLong("tls-client-ca"),
        help: "PEM CA file: require client certificates it signed (mutual TLS)."
    )
    var tlsClientCA: String?

    @Option(
        name: .customLong("tls-ciphers"),
        help: "TLS 1.2 cipher list (OpenSSL syntax); TLS 1.3 suites stay the default."
    )
    var tlsCiphers: String?

    @Option(name: .customLong("tls-handshake-timeout"), help: "Milliseconds a client has to finish the TLS handshake.")
    var tlsHandshakeTimeout: Int64 = 10_000

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(
        help: """
            Event loop threads. Default: the CPUs this process may run on (its CPU affinity, within any \
            cgroup quota), so a server started with `taskset -c 0` runs one event loop.
            """
    )
    var threads: Int?

    func validate() throws {
        guard self.path.hasPrefix("/") else { throw ValidationError("--path must start with '/'") }
        guard self.maxPayload > 0 else { throw ValidationError("--max-payload must be positive") }
        guard self.pingInterval > 0, self.pingTimeout > 0 else {
            throw ValidationError("--ping-interval and --ping-timeout must be positive")
        }
        guard (0...65535).contains(self.port) else { throw ValidationError("--port must be 0...65535") }
        _ = try self.parsedTransports()
        guard Logger.Level(rawValue: self.logLevel) != nil else { throw ValidationError("unknown --log-level") }
        if let threads = self.threads, !(1...1024).contains(threads) {
            throw ValidationError("--threads must be 1...1024")
        }
        guard (self.tlsCertificate == nil) == (self.tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        for entry in self.tlsSNI where entry.split(separator: ":").count != 3 {
            throw ValidationError("--tls-sni wants NAME:CERT:KEY, got \(entry)")
        }
    }

    func parsedTransports() throws -> Set<EngineIOTransport> {
        var set = Set<EngineIOTransport>()
        for name in self.transports.split(separator: ",") {
            guard let t = EngineIOTransport(rawValue: String(name.filter { $0 != " " })) else {
                throw ValidationError("unknown transport '\(name)'")
            }
            set.insert(t)
        }
        guard !set.isEmpty else { throw ValidationError("--transports needs at least one transport") }
        return set
    }

    func run() async throws {
        let level = Logger.Level(rawValue: self.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "socketio-server")
        var (http, endpoints) = try self.makeServer(logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: self.threads ?? Self.availableCPUs())
        http.eventLoopGroup = group
        let tls = try self.makeTLS()
        if let tls {
            http.isSecure = true
            http.connectionPrologue = { channel in
                try channel.pipeline.syncOperations.addHandler(TLSServerHandler(context: tls.current))
            }
            logger.info("TLS enabled", metadata: ["openssl": "\(TLSContext.runtimeVersion)"])
        }
        let server = HTTPServer(configuration: http, endpoints: endpoints)
        let (host, port, scheme) = (http.host, http.port, tls == nil ? "http" : "https")

        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let task = Task {
            try await server.run { address in
                let bound = address.ipAddress ?? host
                FileHandleStderr.write("socketio-server listening on \(scheme)://\(bound):\(address.port ?? port)\n")
            }
        }
        var sources = [SIGTERM, SIGINT].map { sig in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { task.cancel() }
            source.resume()
            return source
        }
        if let tls {
            // SIGHUP reloads the certificates: new connections get them, live ones keep theirs.
            signal(SIGHUP, SIG_IGN)
            let reload = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
            let command = self
            reload.setEventHandler {
                do {
                    if let fresh = try command.makeTLS() { tls.replace(with: fresh.current) }
                    logger.info("TLS certificates reloaded")
                } catch {
                    logger.error("TLS reload failed; keeping the old certificates", metadata: ["error": "\(error)"])
                }
            }
            reload.resume()
            sources.append(reload)
        }
        defer { for source in sources { source.cancel() } }
        try await task.value
        try? await group.shutdownGracefully()
    }

    /// The CPUs this process may run on: its affinity list (`taskset`), capped by NIO's count,
    /// which honours cgroup quotas and cpusets.
    static func availableCPUs() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return System.coreCount }
        // "0", "0-1", "0,2-3": ranges of CPU numbers.
        var affinity = 0
        for range in line.dropFirst("Cpus_allowed_list:".count).split(separator: ",") {
            let bounds = range.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            if bounds.count == 1 {
                affinity += 1
            } else if bounds.count == 2, bounds[1] >= bounds[0] {
                affinity += bounds[1] - bounds[0] + 1
            }
        }
        return affinity > 0 ? min(affinity, System.coreCount) : System.coreCount
    }

    func makeTLS() throws -> TLSContextHolder? {
        guard let certificate = self.tlsCertificate, let key = self.tlsKey else { return nil }
        var configuration = TLSConfiguration(certificateChain: certificate, privateKey: key)
        configuration.namedCertificates = self.tlsSNI.map { entry in
            let parts = entry.split(separator: ":").map(String.init)
            return TLSConfiguration.NamedCertificate(
                serverName: parts[0],
                certificateChain: parts[1],
                privateKey: parts[2]
            )
        }
        configuration.clientCertificateAuthorities = self.tlsClientCA
        if let ciphers = self.tlsCiphers { configuration.ciphers = ciphers }
        configuration.handshakeTimeout = .milliseconds(self.tlsHandshakeTimeout)
        return TLSContextHolder(try TLSContext(configuration: configuration))
    }

    func makeServer(logger: Logger) throws -> (HTTPServer.Configuration, [EngineIOServer]) {
        var http = HTTPServer.Configuration()
        http.port = self.port
        http.logger = logger
        // The request limits hold in every profile (the conformance profile keeps their defaults).
        if self.profile != .conformance {
            http.maxRequestHeadSize = self.maxHTTPHeaderSize
            http.requestBodyTimeout = .milliseconds(self.requestBodyTimeout)
            http.maxBufferedRequestBodyBytes = self.maxBufferedBodyBytes
        }
        switch self.profile {
        case .conformance:
            http.host = "127.0.0.1"
            var engine = EngineIOConfiguration()
            engine.logger = logger
            engine.pingInterval = .milliseconds(300)
            engine.pingTimeout = .milliseconds(200)
            engine.maxPayload = 1_000_000
            engine.cors = CORSConfiguration(origins: .any)
            var echo = engine
            echo.path = "/engine.io/"
            var sio = SocketIOConfiguration()
            sio.engine = engine
            sio.engine.path = "/socket.io/"
            sio.connectTimeout = .milliseconds(1000)
            let io = SocketIOServer(configuration: sio)
            DemoApplication.install(on: io)
            return (http, [EngineIOServer(configuration: echo, application: EngineIOEchoApplication()), io.engine])
        case .websocketEcho:
            http.host = self.host
            var echo = WebSocketEchoConfiguration()
            if self.maxPayloadGiven { echo.maxMessageSize = self.maxPayload }
            echo.perMessageDeflate.enabled = self.deflate
            http.webSocketEcho = echo
            return (http, [])
        case .default, .engineioEcho, .interop, .demo, .bench:
            http.host = self.host
            http.requestHeaderTimeout = .milliseconds(self.requestHeaderTimeout)
            var config = SocketIOConfiguration()
            config.engine.logger = logger
            config.engine.path = self.path.hasSuffix("/") ? self.path : self.path + "/"
            config.engine.pingInterval = .milliseconds(self.pingInterval)
            config.engine.pingTimeout = .milliseconds(self.pingTimeout)
            if self.profile == .interop {
                // The harness's heartbeat check idles 2.5 s: pings must flow within it.
                if !self.pingIntervalGiven { config.engine.pingInterval = .milliseconds(1000) }
                if !self.pingTimeoutGiven { config.engine.pingTimeout = .milliseconds(2000) }
                if self.corsOrigins.isEmpty { config.engine.cors = CORSConfiguration(origins: .any) }
            }
            config.engine.upgradeTimeout = .milliseconds(self.upgradeTimeout)
            config.engine.maxPayload = self.maxPayload
            config.engine.transports = try self.parsedTransports()
            config.engine.allowUpgrades = self.allowUpgrades
            config.engine.maxSessions = self.maxSessions
            config.engine.maxBufferedPackets = self.maxBufferedPackets
            config.engine.perMessageDeflate.enabled = self.deflate
            config.engine.perMessageDeflate.threshold = self.deflateThreshold
            if self.cookie { config.engine.cookie = CookieConfiguration() }
            if !self.corsOrigins.isEmpty {
                config.engine.cors = CORSConfiguration(
                    origins: self.corsOrigins.contains("*") ? .any : .list(self.corsOrigins),
                    credentials: self.corsCredentials
                )
            }
            config.connectTimeout = .milliseconds(self.connectTimeout)
            config.defaultAckTimeout = .milliseconds(self.ackTimeout)
            config.maxAttachments = self.maxAttachments
            config.maxAttachmentBytes = self.maxAttachmentBytes
            config.attachmentTimeout = .milliseconds(self.attachmentTimeout)
            if self.profile == .engineioEcho {
                var engine = config.engine
                engine.maxBufferedBytes = config.maxQueuedBytes
                return (http, [EngineIOServer(configuration: engine, application: EngineIOEchoApplication())])
            }
            var files = StaticFiles()
            for directory in self.staticDirectories { try files.addDirectory(directory) }
            if let bundle = self.clientBundle { try files.addClientBundle(bundle, endpointPath: config.engine.path) }
            if !files.isEmpty { http.files = { [files] head in files.response(for: head) } }
            let io = SocketIOServer(configuration: config)
            switch self.profile {
            case .interop:
                InteropApplication.install(on: io)
            case .demo:
                DemoApplication.install(on: io)
            case .bench:
                BenchApplication.install(on: io)
            case .default, .engineioEcho, .conformance, .websocketEcho:
                ChatApplication.install(on: io)
                let clientURL =
                    self.clientBundle == nil ? Self.clientCDN : config.engine.path + "socket.io.min.js"
                let page = ByteBuffer(string: Self.chatPage(clientURL: clientURL))
                http.fallback = { head in
                    guard EngineIOQuery.path(of: head.uri) == "/" else { return .notFound }
                    return HTTPFallbackResponse(
                        status: .ok,
                        headers: ["Content-Type": "text/html; charset=UTF-8", "Cache-Control": "no-cache"],
                        body: page
                    )
                }
            }
            return (http, [io.engine])
        }
    }
}

extension SocketIOServerCommand {
    /// Where the chat page loads the socket.io client from when the server has no bundle to serve.
    static let clientCDN = "https://cdn.socket.io/4.8.1/socket.io.min.js"

    /// The chat page (Resources/chat.html, embedded at build time) with its client script URL.
    static func chatPage(clientURL: String) -> String {
        String(decoding: PackageResources.chat_html, as: UTF8.self)
            .replacingOccurrences(of: "__SOCKET_IO_CLIENT__", with: clientURL)
    }
}

/// The demo application of the demo and conformance profiles (CONFORMANCE.md §2).
enum DemoApplication {
    static func install(on io: SocketIOServer) {
        for namespace in [io.sockets, io.of("/custom")] {
            namespace.onConnection { socket in socket.emit("auth", socket.handshake.auth) }
        }
        io.onConnection { socket in
            socket.on("message") { socket, args, _ in socket.emit("message-back", arguments: args) }
            socket.on("message-with-ack") { _, args, ack in ack?.send(arguments: args) }
        }
    }
}

/// Unbuffered writes to standard error, for the one line tests and scripts wait for.
enum FileHandleStderr {
    static func write(_ s: String) {
        var s = s
        s.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
    }
}
