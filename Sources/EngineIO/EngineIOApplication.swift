public import EngineIOCore
public import NIOCore

/// The upward seam of the Engine.IO layer: what runs on top of it (Socket.IO, or a bare echo).
///
/// Every method is called on the session's event loop (`socket.eventLoop`), in order. The Engine.IO
/// layer knows nothing about what the messages mean.
public protocol EngineIOApplication: Sendable {
    /// A session opened (the handshake has been sent).
    func sessionOpened(_ socket: EngineIOSocket)
    /// A text message arrived.
    func textReceived(_ text: String, from socket: EngineIOSocket)
    /// A binary message arrived.
    func binaryReceived(_ bytes: ByteBuffer, from socket: EngineIOSocket)
    /// The session closed; no further callbacks come for it.
    func sessionClosed(_ socket: EngineIOSocket, reason: EngineIOCloseReason)
}

/// A handle to one Engine.IO session. Cheap to copy and safe to use from any thread: calls made
/// off the session's event loop hop onto it.
public struct EngineIOSocket: Sendable, Hashable {
    /// The session id.
    public let id: String
    /// The event loop that owns the session.
    public let eventLoop: any EventLoop
    /// The request that opened the session.
    public var request: EngineIORequestInfo { self.requestBox.request }
    private let requestBox: EngineIORequestBox
    let session: NIOLoopBound<EngineIOSession>

    init(session: EngineIOSession) {
        self.id = session.id
        self.eventLoop = session.eventLoop
        self.requestBox = session.requestBox
        self.session = NIOLoopBound(session, eventLoop: session.eventLoop)
    }

    /// Sends a text message.
    ///
    /// - Parameter text: the message.
    public func send(_ text: String) {
        self.enqueue(.message(text))
    }

    /// Sends a binary message.
    ///
    /// - Parameter bytes: the message.
    public func send(_ bytes: ByteBuffer) {
        self.enqueue(.binaryMessage(bytes))
    }

    /// Sends a text message followed by binary messages, with nothing in between (a Socket.IO
    /// packet with its attachments). One hop onto the session's loop for all of them.
    ///
    /// - Parameters:
    ///   - text: the text message.
    ///   - attachments: the binary messages that follow it.
    ///   - volatile: drop the messages instead when the transport cannot take them right now (a
    ///     long-poll is not waiting, or WebSocket writes are still pending).
    public func send(_ text: String, attachments: [ByteBuffer], volatile: Bool = false) {
        self.send(message: .message(text), attachments: attachments, volatile: volatile)
    }

    /// Like ``send(_:attachments:volatile:)``, with the text already in its wire form (`4` first).
    /// The same buffer can go to many receivers: WebSocket frames carry it without a copy.
    ///
    /// - Parameter compress: `false` sends these messages without permessage-deflate.
    public func send(encodedText: ByteBuffer, attachments: [ByteBuffer], volatile: Bool = false, compress: Bool = true)
    {
        self.send(
            message: .encodedMessage(encodedText),
            attachments: attachments,
            volatile: volatile,
            compress: compress
        )
    }

    private func send(message: EngineIOPacket, attachments: [ByteBuffer], volatile: Bool, compress: Bool = true) {
        if self.eventLoop.inEventLoop {
            self.session.value.send(message, attachments: attachments, volatile: volatile, compress: compress)
        } else {
            self.eventLoop.execute {
                self.session.value.send(message, attachments: attachments, volatile: volatile, compress: compress)
            }
        }
    }

    /// State the application keeps with the session (for example its per-connection object).
    /// Read and written on the session's event loop only.
    public var attachment: AnyObject? {
        get { self.session.value.attachment }
        nonmutating set { self.session.value.attachment = newValue }
    }

    /// Closes the session ("forced close"); the client is told with a close packet or frame.
    public func close() {
        if self.eventLoop.inEventLoop {
            self.session.value.close(reason: .forcedClose)
        } else {
            self.eventLoop.execute { self.session.value.close(reason: .forcedClose) }
        }
    }

    /// Closes the session with `reason` (for example ``EngineIOCloseReason/parseError`` when the
    /// layer above found a protocol error).
    public func close(reason: EngineIOCloseReason) {
        if self.eventLoop.inEventLoop {
            self.session.value.close(reason: reason)
        } else {
            self.eventLoop.execute { self.session.value.close(reason: reason) }
        }
    }

    /// The transport currently carrying the session (read on the session's event loop).
    public var transport: EngineIOTransport? {
        self.session.value.transport.currentTransport
    }

    private func enqueue(_ packet: EngineIOPacket) {
        if self.eventLoop.inEventLoop {
            self.session.value.send(packet)
        } else {
            self.eventLoop.execute { self.session.value.send(packet) }
        }
    }

    /// Two handles are equal when they name the same session.
    public static func == (lhs: EngineIOSocket, rhs: EngineIOSocket) -> Bool { lhs.id == rhs.id }

    /// Hashes the session id.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.id) }
}

/// One session's request, shared by reference: handles are copied into every callback and kept by
/// the layers above, and the request (headers, query, address) is too big to copy inline each time.
final class EngineIORequestBox: Sendable {
    let request: EngineIORequestInfo

    init(_ request: EngineIORequestInfo) {
        self.request = request
    }
}
