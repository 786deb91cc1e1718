public import NIOCore

/// Where a Redis server is and how to talk to it.
public struct RedisConfiguration: Sendable, Hashable {
    /// The host name or address.
    public var host: String = "127.0.0.1"
    /// The port. Default 6379.
    public var port: Int = 6379
    /// The ACL user (`AUTH user password`), if any.
    public var username: String?
    /// The password (`AUTH [user] password`), if any.
    public var password: String?
    /// The database (`SELECT`). Default 0.
    public var database: Int = 0
    /// Whether to use TLS (`rediss://`).
    public var tls: Bool = false
    /// The protocol: RESP2 (the default, what every Redis speaks and what Node's adapters use) or
    /// RESP3 (`HELLO 3`, Redis 6 and later).
    public var protocolVersion: ProtocolVersion = .resp2
    /// Time a command may wait for its reply; then it fails and the connection is reset (the
    /// server, or the network, is not answering). Default 5 s.
    public var commandTimeout: TimeAmount = .seconds(5)
    /// Time a connection (TCP and the handshake commands) may take. Default 5 s.
    public var connectTimeout: TimeAmount = .seconds(5)
    /// The first wait before reconnecting; each failure doubles it up to ``maxReconnectDelay``.
    /// Default 100 ms.
    public var initialReconnectDelay: TimeAmount = .milliseconds(100)
    /// The longest wait between reconnection attempts. Default 5 s.
    public var maxReconnectDelay: TimeAmount = .seconds(5)
    /// The most commands that may wait for their replies on a connection; more fail at once
    /// (a slow server never grows memory without bound). Default 10 000.
    public var maxPendingCommands: Int = 10_000

    /// The RESP version.
    public enum ProtocolVersion: Sendable, Hashable {
        /// RESP2.
        case resp2
        /// RESP3.
        case resp3
    }

    /// The defaults: 127.0.0.1:6379, database 0, RESP2.
    public init() {}

    /// Reads a `redis://[user[:password]@]host[:port][/db]` or `rediss://…` URL (user and
    /// password percent-decoded; `redis://:password@host` gives a password alone).
    ///
    /// - Throws: ``RedisError`` for another scheme or a malformed URL.
    public init(url: String) throws {
        var rest = Substring(url)
        if rest.hasPrefix("redis://") {
            rest = rest.dropFirst("redis://".count)
        } else if rest.hasPrefix("rediss://") {
            rest = rest.dropFirst("rediss://".count)
            self.tls = true
        } else {
            throw RedisError.invalidURL(url)
        }
        guard !rest.isEmpty else { throw RedisError.invalidURL(url) }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = Self.percentDecoded(credentials[..<colon])
                self.username = user.isEmpty ? nil : user
                self.password = Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else {
                self.username = Self.percentDecoded(credentials)
            }
        }
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let database = Int(path), database >= 0 else { throw RedisError.invalidURL(url) }
                self.database = database
            }
        }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw RedisError.invalidURL(url) }
            self.host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let port = Int(rest.dropFirst()), (1...65535).contains(port) else {
                    throw RedisError.invalidURL(url)
                }
                self.port = port
            }
        } else if let colon = rest.lastIndex(of: ":") {
            guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
                throw RedisError.invalidURL(url)
            }
            self.port = port
            self.host = String(rest[..<colon])
        } else if !rest.isEmpty {
            self.host = String(rest)
        }
        guard !self.host.isEmpty else { throw RedisError.invalidURL(url) }
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"), utf8.distance(from: index, to: utf8.endIndex) >= 3,
                let value = UInt8(
                    String(decoding: utf8[utf8.index(after: index)..<utf8.index(index, offsetBy: 3)], as: UTF8.self),
                    radix: 16
                )
            {
                bytes.append(value)
                index = utf8.index(index, offsetBy: 3)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Why a Redis operation failed.
public struct RedisError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Base: Hashable, Sendable {
        case invalidURL(String)
        case notConnected
        case timeout
        case server(String)
        case protocolError(String)
        case tooManyPendingCommands
        case closed
        case tlsUnsupported
    }

    private let base: Base

    /// A URL this client cannot use.
    public static func invalidURL(_ url: String) -> RedisError { RedisError(base: .invalidURL(url)) }
    /// No connection to the server right now (it is being re-established): the command was not sent.
    public static let notConnected = RedisError(base: .notConnected)
    /// The command's reply did not come within ``RedisConfiguration/commandTimeout``.
    public static let timeout = RedisError(base: .timeout)
    /// The server answered with an error.
    public static func server(_ message: String) -> RedisError { RedisError(base: .server(message)) }
    /// The server sent bytes that are not RESP.
    public static func protocolError(_ reason: String) -> RedisError { RedisError(base: .protocolError(reason)) }
    /// ``RedisConfiguration/maxPendingCommands`` commands already wait for their replies.
    public static let tooManyPendingCommands = RedisError(base: .tooManyPendingCommands)
    /// The client was closed.
    public static let closed = RedisError(base: .closed)
    /// `rediss://` was asked for; this client speaks plain TCP only.
    public static let tlsUnsupported = RedisError(base: .tlsUnsupported)

    /// A one-line description.
    public var description: String {
        switch self.base {
        case .invalidURL(let url): return "invalid Redis URL: \(url)"
        case .notConnected: return "not connected to Redis"
        case .timeout: return "Redis did not answer in time"
        case .server(let message): return "Redis error: \(message)"
        case .protocolError(let reason): return "Redis protocol error: \(reason)"
        case .tooManyPendingCommands: return "too many Redis commands waiting for replies"
        case .closed: return "the Redis client is closed"
        case .tlsUnsupported: return "rediss:// (TLS) is not supported by this client yet"
        }
    }

    /// The server's error message, for ``server(_:)`` errors.
    public var serverMessage: String? {
        if case .server(let message) = self.base { return message }
        return nil
    }
}
