public import EngineIOCore
public import NIOCore

/// A bare Engine.IO application that sends every message straight back to its sender, unchanged
/// and of the same kind (text stays text, binary stays binary).
///
/// This is the `/engine.io/` endpoint of the conformance profile.
public struct EngineIOEchoApplication: EngineIOApplication {
    /// Creates the echo application.
    public init() {}

    /// Does nothing: the echo server speaks only when spoken to.
    public func sessionOpened(_ socket: EngineIOSocket) {}

    /// Sends `text` back.
    public func textReceived(_ text: String, from socket: EngineIOSocket) {
        socket.send(text)
    }

    /// Sends `bytes` back.
    public func binaryReceived(_ bytes: ByteBuffer, from socket: EngineIOSocket) {
        socket.send(bytes)
    }

    /// Does nothing.
    public func sessionClosed(_ socket: EngineIOSocket, reason: EngineIOCloseReason) {}
}
