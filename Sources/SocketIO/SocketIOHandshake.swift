public import EngineIOCore
public import NIOHTTP1
public import SocketIOCore

/// What the server knows of a socket's connection, as middleware sees it (Node's
/// `socket.handshake`).
public struct SocketIOHandshake: Sendable {
    /// The headers of the request that opened the connection.
    public var headers: HTTPHeaders
    /// Its query parameters.
    public var query: EngineIOQuery
    /// The auth object of the CONNECT packet (`{}` when the client sent none).
    public var auth: JSONValue
    /// The peer's address (IP), if known.
    public var address: String?
    /// Whether the connection is TLS.
    public var secure: Bool
    /// When the connection was opened, in milliseconds since the Unix epoch.
    public var issued: Int64
    /// The request target.
    public var url: String
    /// Whether the request came from another origin.
    public var xdomain: Bool

    /// When the connection was opened, as Node writes it (`String(new Date())`, in UTC).
    public var time: String { UTCDate(milliseconds: self.issued).javaScriptString }
}
