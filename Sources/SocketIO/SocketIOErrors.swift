public import SocketIOCore

/// Thrown by connection middleware to refuse a namespace connection. The client receives a
/// CONNECT_ERROR with `message` and, if given, `data` (its `connect_error` event sees both).
public struct SocketIOConnectError: Error, Sendable {
    /// The message.
    public var message: String
    /// Extra JSON for the client.
    public var data: JSONValue?

    /// Creates a refusal.
    ///
    /// - Parameters:
    ///   - message: the message (`err.message` in the JS client).
    ///   - data: extra JSON (`err.data` in the JS client).
    public init(_ message: String, data: JSONValue? = nil) {
        self.message = message
        self.data = data
    }
}

/// Why an `emitWithAck` failed.
public struct SocketIOAckError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Base: Hashable, Sendable {
        case timeout
        case disconnected
        case tooManyPendingAcks
    }

    private let base: Base

    /// No answer came in time.
    public static let timeout = Self(base: .timeout)
    /// The socket disconnected before answering.
    public static let disconnected = Self(base: .disconnected)
    /// The socket already waits for `maxPendingAcks` answers.
    public static let tooManyPendingAcks = Self(base: .tooManyPendingAcks)

    /// A short description.
    public var description: String {
        switch self.base {
        case .timeout: return "operation has timed out"
        case .disconnected: return "socket has been disconnected"
        case .tooManyPendingAcks: return "too many pending acks"
        }
    }
}

/// Why a socket left its namespace, with the reference server's wording.
public struct SocketIODisconnectReason: Hashable, Sendable, CustomStringConvertible {
    /// The reason's text, as the Node server words it.
    public let description: String

    init(_ text: String) { self.description = text }

    /// The client left the namespace (a DISCONNECT packet).
    public static let clientNamespaceDisconnect = Self("client namespace disconnect")
    /// The server called `disconnect()` on the socket.
    public static let serverNamespaceDisconnect = Self("server namespace disconnect")
    /// The client closed the connection.
    public static let transportClose = Self("transport close")
    /// The connection failed.
    public static let transportError = Self("transport error")
    /// The client stopped answering pings.
    public static let pingTimeout = Self("ping timeout")
    /// The client sent something that is not Socket.IO.
    public static let parseError = Self("parse error")
    /// The server is shutting down.
    public static let serverShuttingDown = Self("server shutting down")
    /// The server closed the connection.
    public static let forcedClose = Self("forced close")
    /// The client did not read what was sent to it (slow-consumer policy).
    public static let transportBufferFull = Self("transport buffer full")
    /// The client sent a message over `maxPayload`.
    public static let payloadTooLarge = Self("payload too large")
}

/// A `serverSideEmit` with an event name the protocol reserves (`connect`, `disconnect`, …).
public struct SocketIOReservedEventError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The event name.
    public let event: String

    /// A one-line description.
    public var description: String { "\"\(self.event)\" is a reserved event name" }
}
