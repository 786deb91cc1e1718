public import NIOCore

/// Server-side TLS on a NIO pipeline, first in line: ciphertext from the network in, plaintext to
/// the HTTP handlers; plaintext from them out, ciphertext to the network.
///
/// States: waiting for the first byte (a TLS record must start with 0x16; a plain HTTP request gets
/// a short 400 answer, anything else is dropped), handshaking (with a timeout; application writes
/// wait), open, closing (close_notify sent), closed. Renegotiation is refused by the context.
public final class TLSServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private enum State {
        case waitingForClientHello
        case handshaking
        case open
        case closing
        case closed
    }

    private let context: TLSContext
    private var connection: TLSConnection?
    private var state: State = .waitingForClientHello
    private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var handshakeTimer: Scheduled<Void>?

    /// Creates a handler for one connection, with the holder's current context.
    ///
    /// - Parameter context: the TLS contexts.
    public init(context: TLSContext) {
        self.context = context
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        self.handshakeTimer = context.eventLoop.scheduleTask(in: self.context.handshakeTimeout) {
            channel.close(promise: nil)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.handshakeTimer?.cancel()
        self.failPendingWrites()
        self.connection = nil
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        switch self.state {
        case .waitingForClientHello:
            guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return }
            guard first == 0x16 else { return self.refusePlaintext(context: context, first: first) }
            guard let connection = TLSConnection(context: self.context) else {
                context.close(promise: nil)
                return
            }
            self.connection = connection
            self.state = .handshaking
            connection.consume(bytes)
            self.advanceHandshake(context: context)
        case .handshaking:
            self.connection?.consume(bytes)
            self.advanceHandshake(context: context)
        case .open, .closing:
            self.connection?.consume(bytes)
            self.readPlaintext(context: context, sizeHint: bytes.readableBytes)
        case .closed:
            break
        }
    }

    private func refusePlaintext(context: ChannelHandlerContext, first: UInt8) {
        self.state = .closed
        let channel = context.channel
        guard (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) else {
            context.close(promise: nil)  // neither TLS nor HTTP
            return
        }
        let body = "This port speaks HTTPS.\n"
        let response =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    private func advanceHandshake(context: ChannelHandlerContext) {
        guard let connection = self.connection else { return }
        switch connection.handshake() {
        case .incomplete:
            self.flushCiphertext(context: context)
        case .failed:
            self.flushCiphertext(context: context)  // the alert
            self.state = .closed
            context.close(promise: nil)
        case .complete:
            self.handshakeTimer?.cancel()
            self.handshakeTimer = nil
            self.state = .open
            self.flushCiphertext(context: context)
            let writes = self.pendingWrites
            self.pendingWrites = []
            for (plaintext, promise) in writes { self.encrypt(context: context, plaintext, promise: promise) }
            if !writes.isEmpty { context.flush() }
            // Application data may have come with the client's last handshake flight.
            self.readPlaintext(context: context, sizeHint: 16 * 1024)
        }
    }

    /// Decrypts everything available. Plaintext is never larger than the ciphertext it came in, so
    /// `sizeHint` (the ciphertext just received) sizes the buffers: no 16 KiB buffer per small
    /// message.
    private func readPlaintext(context: ChannelHandlerContext, sizeHint: Int) {
        guard let connection = self.connection else { return }
        var produced = false
        let capacity = min(max(sizeHint, 256), 16 * 1024)
        while true {
            var buffer = context.channel.allocator.buffer(capacity: capacity)
            switch connection.read(into: &buffer, capacity: capacity) {
            case .data:
                produced = true
                context.fireChannelRead(self.wrapInboundOut(buffer))
            case .wantMore:
                if produced { context.fireChannelReadComplete() }
                self.flushCiphertext(context: context)
                return
            case .closedByPeer:
                // close_notify: answer it and close.
                if produced { context.fireChannelReadComplete() }
                connection.shutdown()
                self.flushCiphertext(context: context)
                self.state = .closed
                context.close(promise: nil)
                return
            case .failed:
                self.flushCiphertext(context: context)
                self.state = .closed
                context.close(promise: nil)
                return
            }
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        // Plaintext read completion is fired by readPlaintext when plaintext was produced.
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.state = .closed
        self.handshakeTimer?.cancel()
        self.failPendingWrites()
        context.fireChannelInactive()
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = self.unwrapOutboundIn(data)
        switch self.state {
        case .waitingForClientHello:
            // Only the plaintext refusal is written before a handshake; anything else waits.
            self.pendingWrites.append((plaintext, promise))
        case .handshaking:
            self.pendingWrites.append((plaintext, promise))
        case .open:
            self.encrypt(context: context, plaintext, promise: promise)
        case .closing, .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    private func encrypt(context: ChannelHandlerContext, _ plaintext: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let connection = self.connection else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch connection.write(plaintext) {
        case .complete, .incomplete:
            if let ciphertext = connection.takeOutgoing(allocator: context.channel.allocator) {
                context.write(self.wrapOutboundOut(ciphertext), promise: promise)
            } else {
                promise?.succeed()
            }
        case .failed:
            promise?.fail(ChannelError.ioOnClosedChannel)
            context.close(promise: nil)
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if case .open = self.state, mode == .all, let connection = self.connection {
            // Send close_notify before closing the socket.
            self.state = .closing
            connection.shutdown()
            if let ciphertext = connection.takeOutgoing(allocator: context.channel.allocator) {
                context.writeAndFlush(self.wrapOutboundOut(ciphertext), promise: nil)
            }
        }
        self.failPendingWrites()
        context.close(mode: mode, promise: promise)
    }

    private func flushCiphertext(context: ChannelHandlerContext) {
        guard let connection = self.connection,
            let ciphertext = connection.takeOutgoing(allocator: context.channel.allocator)
        else { return }
        context.writeAndFlush(self.wrapOutboundOut(ciphertext), promise: nil)
    }

    private func failPendingWrites() {
        let writes = self.pendingWrites
        self.pendingWrites = []
        for (_, promise) in writes { promise?.fail(ChannelError.ioOnClosedChannel) }
    }
}

@available(*, unavailable)
extension TLSServerHandler: Sendable {}
