public import EngineIOCore
public import Logging
public import NIOCore
public import NIOHTTP1
public import PerMessageDeflate

/// Options of one Engine.IO endpoint. Every default equals the Node.js reference server's
/// (engine.io 6.x) unless its comment says why not.
public struct EngineIOConfiguration: Sendable {
    /// The URL path the endpoint serves, with leading and trailing slash. Default `/socket.io/`.
    public var path: String = "/socket.io/"
    /// Time between heartbeat pings. Default 25 s.
    public var pingInterval: TimeAmount = .seconds(25)
    /// Time the client has to answer a ping before the session is closed. Default 20 s.
    public var pingTimeout: TimeAmount = .seconds(20)
    /// Time a polling → WebSocket upgrade may take before the candidate WebSocket is closed.
    /// Default 10 s.
    public var upgradeTimeout: TimeAmount = .seconds(10)
    /// The largest message or POST body accepted, in bytes; advertised as `maxPayload` in the
    /// handshake (Node's `maxHttpBufferSize`). A larger POST gets 413, a larger WebSocket message
    /// close code 1009, and the session is closed. Default 1 000 000.
    public var maxPayload: Int = 1_000_000
    /// The transports clients may use. Default both.
    public var transports: Set<EngineIOTransport> = [.polling, .websocket]
    /// Whether polling sessions may upgrade to WebSocket. Default `true`.
    public var allowUpgrades: Bool = true
    /// Cross-origin resource sharing for browsers on other origins, or `nil` for no CORS headers.
    /// Default `nil` (as in Node, where CORS is opt-in).
    public var cors: CORSConfiguration? = nil
    /// The sid cookie for sticky load balancing, or `nil` for none. Default `nil` (Node's default
    /// since engine.io 4).
    public var cookie: CookieConfiguration? = nil
    /// A hook that may refuse a handshake: return `false` to answer 403 with Engine.IO error code 4
    /// (Forbidden). Runs for handshakes only, not for requests of existing sessions. Default `nil`.
    public var allowRequest: (@Sendable (EngineIORequestInfo) async -> Bool)? = nil
    /// Generates session ids. Must return ids unique among live sessions; a collision refuses the
    /// handshake. Default: 15 random bytes as 20 URL-safe base64 characters, like the reference.
    public var sessionIDGenerator: @Sendable () -> String = {
        RandomPool.sessionID()
    }
    /// The most concurrent sessions; further handshakes get 503. Default 100 000: far above what
    /// one process here serves (20 000 fds), so it only stops runaway handshake floods of polling
    /// sessions, which hold no socket. Node has no such limit.
    public var maxSessions: Int = 100_000
    /// The most packets that may wait for one client (for a long-poll, or written to a WebSocket and
    /// not yet taken by the kernel) before the session is closed with "transport buffer full". Default 10 000: a polling client normally collects its packets
    /// every few milliseconds, so only a client that stopped polling reaches it. Node has no limit.
    public var maxBufferedPackets: Int = 10_000
    /// The most bytes that may wait for one client before the session is closed with "transport
    /// buffer full": packets waiting for a long-poll, or WebSocket frames written but not yet taken
    /// by the kernel (a client that stops reading). Together with ``maxBufferedPackets`` this bounds
    /// the memory a slow consumer can hold. Default 16 MiB. Node has no limit.
    public var maxBufferedBytes: Int = 16 << 20

    /// WebSocket permessage-deflate (RFC 7692). On by default, without context takeover, so an idle
    /// connection costs no compression memory (see ``PerMessageDeflateConfiguration``). Its
    /// `maxDecompressedSize` is replaced by ``maxPayload``. Node ships it off because of zlib's
    /// per-connection memory, which this design does not have.
    public var perMessageDeflate = PerMessageDeflateConfiguration()

    /// Long-polling responses of at least this many bytes are compressed (gzip or deflate, as the
    /// request's `Accept-Encoding` allows); `nil` turns HTTP compression off. Default 1 024, Node's
    /// `httpCompression.threshold`.
    public var httpCompressionThreshold: Int? = 1024

    /// Where session lifecycle messages go: `debug` for sessions opened and closed (with the
    /// reason), `trace` for long-polls held. Default: a logger labelled `engine.io`.
    public var logger = Logger(label: "engine.io")

    /// Creates a configuration with the defaults.
    public init() {}

    /// The handshake's `pingInterval` in milliseconds.
    var pingIntervalMilliseconds: Int64 { self.pingInterval.nanoseconds / 1_000_000 }
    /// The handshake's `pingTimeout` in milliseconds.
    var pingTimeoutMilliseconds: Int64 { self.pingTimeout.nanoseconds / 1_000_000 }
}

/// CORS options, after the `cors` middleware that the Node server uses.
public struct CORSConfiguration: Sendable {
    /// Which origins are allowed.
    public enum Origins: Sendable, Hashable {
        /// Any origin (`*`; the request's origin is reflected when credentials are allowed, since
        /// browsers refuse `*` with credentials).
        case any
        /// Only these origins (exact match, e.g. `https://example.com`); the origin is reflected.
        case list([String])
    }

    /// Which origins are allowed. Default any.
    public var origins: Origins = .any
    /// Whether to send `Access-Control-Allow-Credentials: true`. Default `false`.
    public var credentials: Bool = false
    /// Methods allowed in preflight answers. Default the `cors` middleware's list.
    public var methods: [String] = ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]
    /// Headers allowed in preflight answers, or `nil` to reflect the request's
    /// `Access-Control-Request-Headers`. Default `nil`.
    public var allowedHeaders: [String]? = nil
    /// `Access-Control-Max-Age` for preflight answers, in seconds, or `nil` to omit it. Default `nil`.
    public var maxAge: Int? = nil

    /// Creates a CORS configuration.
    ///
    /// - Parameters:
    ///   - origins: the allowed origins.
    ///   - credentials: whether credentials are allowed.
    public init(origins: Origins = .any, credentials: Bool = false) {
        self.origins = origins
        self.credentials = credentials
    }

    /// The headers for a response to a request with `origin`.
    func headers(origin: String?) -> [(String, String)] {
        var out: [(String, String)] = []
        switch self.origins {
        case .any:
            if self.credentials, let origin {
                out.append(("Access-Control-Allow-Origin", origin))
                out.append(("Vary", "Origin"))
            } else {
                out.append(("Access-Control-Allow-Origin", "*"))
            }
        case .list(let allowed):
            out.append(("Vary", "Origin"))
            if let origin, allowed.contains(origin) { out.append(("Access-Control-Allow-Origin", origin)) }
        }
        if self.credentials { out.append(("Access-Control-Allow-Credentials", "true")) }
        return out
    }

    /// The extra headers of a preflight answer.
    func preflightHeaders(requestHeaders: String?) -> [(String, String)] {
        var out: [(String, String)] = [("Access-Control-Allow-Methods", self.methods.joined(separator: ","))]
        if let allowed = self.allowedHeaders {
            out.append(("Access-Control-Allow-Headers", allowed.joined(separator: ",")))
        } else if let requested = requestHeaders {
            out.append(("Access-Control-Allow-Headers", requested))
            out.append(("Vary", "Access-Control-Request-Headers"))
        }
        if let maxAge = self.maxAge { out.append(("Access-Control-Max-Age", String(maxAge))) }
        return out
    }
}

/// The sid cookie set on the handshake response, for load balancers that route by cookie.
public struct CookieConfiguration: Sendable, Hashable {
    /// The cookie name. Default `io`.
    public var name: String = "io"
    /// The cookie path. Default `/`.
    public var path: String = "/"
    /// Whether the cookie is `HttpOnly`. Default `true`.
    public var httpOnly: Bool = true
    /// The `SameSite` attribute. Default `Lax`.
    public var sameSite: String = "Lax"
    /// Whether the cookie is `Secure`. Default `false`.
    public var secure: Bool = false
    /// `Max-Age` in seconds, or `nil` for a session cookie. Default `nil`.
    public var maxAge: Int? = nil

    /// Creates a cookie configuration with the defaults.
    public init() {}

    /// The `Set-Cookie` value for session `sid`.
    func header(sid: String) -> String {
        var s = "\(self.name)=\(sid); Path=\(self.path)"
        if self.httpOnly { s += "; HttpOnly" }
        if let maxAge = self.maxAge { s += "; Max-Age=\(maxAge)" }
        if self.secure { s += "; Secure" }
        s += "; SameSite=\(self.sameSite)"
        return s
    }
}

/// What the server knows of the request that opened a session.
public struct EngineIORequestInfo: Sendable {
    /// The request method.
    public var method: HTTPMethod
    /// The request target (path and query).
    public var uri: String
    /// The decoded query parameters.
    public var query: EngineIOQuery
    /// The request headers.
    public var headers: HTTPHeaders
    /// The peer's address.
    public var remoteAddress: SocketAddress?
    /// Whether the connection is TLS.
    public var isSecure: Bool
    /// When the request arrived, in milliseconds since the Unix epoch.
    public var issuedAtMilliseconds: Int64
    /// The transport of the handshake.
    public var transport: EngineIOTransport
}
