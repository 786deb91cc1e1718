import NIOConcurrencyHelpers
package import NIOCore
import NIOWebSocket

/// Sits just before (head-side of) NIO's `WebSocketFrameEncoder` so that a ``WebSocketConnection``
/// can write frames it has already framed itself: the header in the payload buffer's headroom or
/// several small frames copied into one buffer, without boxing a `WebSocketFrame`, without a
/// separate header buffer per frame, and with one `iovec` per batch of small frames. Writes
/// from the handlers above (pongs, close frames, deflated frames) pass through unchanged.
package final class WebSocketRawWriter: ChannelOutboundHandler, RemovableChannelHandler {
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private(set) var context: ChannelHandlerContext?

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Installs a writer just before the channel's `WebSocketFrameEncoder`.
    package static func install(in channel: any Channel) throws {
        let encoder = try channel.pipeline.syncOperations.handler(type: WebSocketFrameEncoder.self)
        try channel.pipeline.syncOperations.addHandler(WebSocketRawWriter(), position: .before(encoder))
    }

    /// The bytes of an unmasked server frame header for a final frame of `opcode` carrying
    /// `length` bytes (RFC 6455 §5.2).
    static func headerSize(length: Int) -> Int {
        length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
    }

    /// Writes the header at `index` of `buffer` (which has room for it); returns its size.
    @discardableResult
    static func setHeader(opcode: WebSocketOpcode, length: Int, in buffer: inout ByteBuffer, at index: Int) -> Int {
        let first = 0x80 | UInt8(webSocketOpcode: opcode)
        buffer.setInteger(first, at: index)
        if length < 126 {
            buffer.setInteger(UInt8(length), at: index + 1)
            return 2
        } else if length <= 0xFFFF {
            buffer.setInteger(UInt8(126), at: index + 1)
            buffer.setInteger(UInt16(length), at: index + 2)
            return 4
        } else {
            buffer.setInteger(UInt8(127), at: index + 1)
            buffer.setInteger(UInt64(length), at: index + 2)
            return 10
        }
    }
}

@available(*, unavailable)
extension WebSocketRawWriter: Sendable {}

/// Runs the queued writes of every WebSocket of one event loop once per loop tick: connections
/// with frames to write register here, and one task writes and flushes them all, instead of one
/// task per connection (a broadcast to a thousand sockets schedules one task, not a thousand).
package final class WebSocketFlushScheduler: Sendable {
    let eventLoop: any EventLoop
    private let pending = NIOLockedValueBox(
        (connections: [WebSocketConnection](), spare: [WebSocketConnection](), scheduled: false)
    )

    package init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Registers `connection` (of this loop) for the next run.
    func schedule(_ connection: WebSocketConnection) {
        let first = self.pending.withLockedValue { pending -> Bool in
            pending.connections.append(connection)
            defer { pending.scheduled = true }
            return !pending.scheduled
        }
        if first { self.eventLoop.execute { self.run() } }
    }

    private func run() {
        // The array is taken whole and given back empty with its capacity, as in
        // `WebSocketConnection`, so that steady traffic allocates none.
        var connections: [WebSocketConnection] = []
        self.pending.withLockedValue { pending in
            swap(&connections, &pending.connections)
            swap(&pending.connections, &pending.spare)
            pending.scheduled = false
        }
        for connection in connections { connection.writeQueued() }
        connections.removeAll(keepingCapacity: true)
        self.pending.withLockedValue { $0.spare = connections }
    }
}
