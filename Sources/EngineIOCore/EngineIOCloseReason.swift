/// Why an Engine.IO session closed, with the reference server's wording.
public struct EngineIOCloseReason: Hashable, Sendable, CustomStringConvertible {
    private enum Base: String, Hashable, Sendable {
        case transportClose = "transport close"
        case transportError = "transport error"
        case pingTimeout = "ping timeout"
        case parseError = "parse error"
        case forcedClose = "forced close"
        case serverShutdown = "server shutting down"
        case bufferFull = "transport buffer full"
        case payloadTooLarge = "payload too large"
    }

    private let base: Base

    /// The client closed the transport (a close packet, a closed WebSocket).
    public static let transportClose = Self(base: .transportClose)
    /// The transport failed (a dropped long-poll, a request overlap, a WebSocket protocol error).
    public static let transportError = Self(base: .transportError)
    /// No pong arrived within `pingTimeout`.
    public static let pingTimeout = Self(base: .pingTimeout)
    /// The client sent a packet that could not be decoded.
    public static let parseError = Self(base: .parseError)
    /// The server application closed the session.
    public static let forcedClose = Self(base: .forcedClose)
    /// The server is shutting down.
    public static let serverShutdown = Self(base: .serverShutdown)
    /// More packets were waiting for a long-poll than `maxBufferedPackets` allows.
    public static let bufferFull = Self(base: .bufferFull)
    /// The client sent more than `maxPayload` bytes in one request or message.
    public static let payloadTooLarge = Self(base: .payloadTooLarge)

    /// The reason as the reference server words it (for example `ping timeout`).
    public var description: String { self.base.rawValue }
}
