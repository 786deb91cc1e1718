import NIOConcurrencyHelpers
package import NIOCore
package import NIOWebSocket

/// The WebSocket frame encoder of every connection, and the place below which a
/// ``WebSocketConnection`` writes frames it has already framed itself: the header in the payload
/// buffer's headroom, or several small frames copied into one buffer, without boxing a
/// `WebSocketFrame`, without a separate header buffer per frame, and with one `iovec` per batch.
/// Frames written by the handlers above (pongs, close frames, deflated frames) are encoded here
/// (RFC 6455 §5.2), in place of NIO's `WebSocketFrameEncoder`: one handler less per connection.
package final class WebSocketRawWriter: ChannelOutboundHandler, RemovableChannelHandler {
    package typealias OutboundIn = WebSocketFrame
    package typealias OutboundOut = ByteBuffer

    private(set) var context: ChannelHandlerContext?

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Adds the writer (the connection's frame encoder) at the end of the pipeline, after the
    /// frame decoder and before the handlers that write frames.
    package static func install(in channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHandler(WebSocketRawWriter())
    }

    /// Encodes a frame from the handlers above: header and payload copied into one buffer when
    /// the payload is small, else the header and the (possibly shared) payload as two writes.
    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = Self.unwrapOutboundIn(data)
        var payload = frame.data
        if var extensionData = frame.extensionData {
            extensionData.writeBuffer(&payload)
            payload = extensionData
        }
        if let key = frame.maskKey { payload.webSocketMask(key) }
        let length = payload.readableBytes
        var first = UInt8(webSocketOpcode: frame.opcode)
        if frame.fin { first |= 0x80 }
        if frame.rsv1 { first |= 0x40 }
        if frame.rsv2 { first |= 0x20 }
        if frame.rsv3 { first |= 0x10 }
        let headerSize = Self.headerSize(length: length) + (frame.maskKey == nil ? 0 : 4)
        var header = context.channel.allocator.buffer(capacity: headerSize + (length <= 512 ? length : 0))
        header.moveWriterIndex(forwardBy: headerSize)
        Self.setHeader(first: first, length: length, mask: frame.maskKey, in: &header, at: 0)
        if length <= 512 {
            header.writeBuffer(&payload)
            context.write(Self.wrapOutboundOut(header), promise: promise)
        } else {
            context.write(Self.wrapOutboundOut(header), promise: nil)
            context.write(Self.wrapOutboundOut(payload), promise: promise)
        }
    }

    /// The bytes of an unmasked server frame header for a final frame of `opcode` carrying
    /// `length` bytes (RFC 6455 §5.2).
    static func headerSize(length: Int) -> Int {
        length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
    }

    /// Writes the header at `index` of `buffer` (which has room for it); returns its size.
    @discardableResult
    static func setHeader(opcode: WebSocketOpcode, length: Int, in buffer: inout ByteBuffer, at index: Int) -> Int {
        Self.setHeader(first: 0x80 | UInt8(webSocketOpcode: opcode), length: length, mask: nil, in: &buffer, at: index)
    }

    /// Writes a header with first byte `first` (FIN, RSV and opcode bits), the payload length
    /// and, when given, the masking key; returns its size.
    @discardableResult
    static func setHeader(
        first: UInt8,
        length: Int,
        mask: WebSocketMaskingKey?,
        in buffer: inout ByteBuffer,
        at index: Int
    ) -> Int {
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        buffer.setInteger(first, at: index)
        var size: Int
        if length < 126 {
            buffer.setInteger(maskBit | UInt8(length), at: index + 1)
            size = 2
        } else if length <= 0xFFFF {
            buffer.setInteger(maskBit | 126, at: index + 1)
            buffer.setInteger(UInt16(length), at: index + 2)
            size = 4
        } else {
            buffer.setInteger(maskBit | 127, at: index + 1)
            buffer.setInteger(UInt64(length), at: index + 2)
            size = 10
        }
        if let mask {
            buffer.setBytes(mask, at: index + size)
            size += 4
        }
        return size
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
