import NIOConcurrencyHelpers
public import NIOCore
public import NIOWebSocket

/// RFC 7692 permessage-deflate on a WebSocket pipeline of frames, between a frame decoder/encoder
/// and the message handler. (A message handler that parses frames itself inflates through
/// ``PerMessageDeflateInflater`` and puts this handler after itself, where it only compresses
/// what is written from the pipeline's end.)
///
/// Inbound, it checks that client frames are masked (RFC 6455 §5.1), unmasks them, and inflates
/// compressed messages frame by frame, *before* any aggregation (NIO's aggregator would lose RSV1
/// on fragments). RSV1 is cleared on what it passes on; RSV1 anywhere else (a continuation or
/// control frame) is passed through for the message handler to refuse. The inflated size of a
/// message is capped (`PerMessageDeflateError.messageTooLarge`, close code 1009).
///
/// Outbound, data frames of at least `threshold` bytes are deflated with a sync flush, the
/// trailing `00 00 FF FF` stripped, and RSV1 set (RFC 7692 §7.2.1). A
/// ``PerMessageDeflateHandler/SkipCompression`` event sends the next data frame uncompressed.
///
/// Without context takeover, one compressor and one decompressor per event loop serve every
/// connection of that loop, so an idle connection holds no zlib memory.
public final class PerMessageDeflateHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = WebSocketFrame
    public typealias InboundOut = WebSocketFrame
    public typealias OutboundIn = WebSocketFrame
    public typealias OutboundOut = WebSocketFrame

    /// A user outbound event: send the next data frame uncompressed (Socket.IO's
    /// `compress(false)`).
    public struct SkipCompression: Sendable {
        /// Creates the event.
        public init() {}
    }

    private let parameters: PerMessageDeflateParameters
    private let configuration: PerMessageDeflateConfiguration
    private var shared: LoopStreams?
    private var ownDeflater: ZlibStream?
    /// The inbound side, made with the first frame (a pipeline whose message handler inflates by
    /// itself, ahead of this handler, never sends it any).
    private var inflater: PerMessageDeflateInflater?
    private var skipNext = false

    /// Creates the handler for negotiated `parameters`.
    ///
    /// - Parameters:
    ///   - parameters: what the handshake agreed on.
    ///   - configuration: the server's options (threshold, levels, size cap).
    public init(parameters: PerMessageDeflateParameters, configuration: PerMessageDeflateConfiguration) {
        self.parameters = parameters
        self.configuration = configuration
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.shared = LoopStreams.forLoop(context.eventLoop, configuration: self.configuration)
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        guard let key = frame.maskKey else {
            context.fireErrorCaught(PerMessageDeflateError.protocolViolation)
            return
        }
        let inflater =
            self.inflater
            ?? PerMessageDeflateInflater(
                parameters: self.parameters,
                configuration: self.configuration,
                eventLoop: context.eventLoop
            )
        self.inflater = inflater
        var payload = frame.data
        payload.webSocketMask(key)
        do {
            let (data, rsv1) = try inflater.receive(
                fin: frame.fin,
                rsv1: frame.rsv1,
                opcode: frame.opcode,
                payload: payload,
                allocator: context.channel.allocator
            )
            let out = WebSocketFrame(
                fin: frame.fin,
                rsv1: rsv1,
                rsv2: frame.rsv2,
                rsv3: frame.rsv3,
                opcode: frame.opcode,
                maskKey: nil,
                data: data
            )
            context.fireChannelRead(self.wrapInboundOut(out))
        } catch {
            context.fireErrorCaught(error)
        }
    }

    // MARK: Outbound

    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if event is SkipCompression {
            self.skipNext = true
            promise?.succeed()
            return
        }
        context.triggerUserOutboundEvent(event, promise: promise)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = self.unwrapOutboundIn(data)
        guard frame.opcode == .text || frame.opcode == .binary else {
            context.write(data, promise: promise)
            return
        }
        let skip = self.skipNext
        self.skipNext = false
        guard !skip, frame.fin, !frame.rsv1, frame.data.readableBytes >= self.configuration.threshold,
            let deflater = self.deflater()
        else {
            context.write(data, promise: promise)
            return
        }
        // Without context takeover the same payload always compresses to the same bytes: a
        // broadcast (one shared buffer, many receivers) is compressed once per event loop.
        let window = self.parameters.serverMaxWindowBits
        if self.parameters.serverNoContextTakeover,
            let cached = self.shared?.cachedCompression(of: frame.data, window: window)
        {
            let compressed = WebSocketFrame(fin: true, rsv1: true, opcode: frame.opcode, data: cached)
            context.write(self.wrapOutboundOut(compressed), promise: promise)
            return
        }
        var output = context.channel.allocator.buffer(capacity: frame.data.readableBytes / 2 + 64)
        do {
            try deflater.deflateSync(frame.data.readableBytesView, into: &output)
        } catch {
            deflater.reset()
            context.write(data, promise: promise)
            return
        }
        if self.parameters.serverNoContextTakeover { deflater.reset() }
        // Strip the 00 00 FF FF that the sync flush ends with (RFC 7692 §7.2.1).
        if output.readableBytes >= 4, output.getInteger(at: output.writerIndex - 4, as: UInt32.self) == 0x0000_FFFF {
            output.moveWriterIndex(to: output.writerIndex - 4)
        }
        if self.parameters.serverNoContextTakeover {
            self.shared?.remember(source: frame.data, window: window, compressed: output)
        }
        let compressed = WebSocketFrame(fin: true, rsv1: true, opcode: frame.opcode, data: output)
        context.write(self.wrapOutboundOut(compressed), promise: promise)
    }

    private func deflater() -> ZlibStream? {
        if self.parameters.serverNoContextTakeover {
            return self.shared?.deflater(windowBits: self.parameters.serverMaxWindowBits)
        }
        if self.ownDeflater == nil {
            self.ownDeflater = try? ZlibStream(
                deflateWindowBits: Int32(self.parameters.serverMaxWindowBits),
                memLevel: Int32(self.configuration.memoryLevel),
                level: Int32(self.configuration.compressionLevel)
            )
        }
        return self.ownDeflater
    }
}

@available(*, unavailable)
extension PerMessageDeflateHandler: Sendable {}

/// The inbound half of RFC 7692 for one connection: unmasked client frames in, their payloads
/// out, inflated when the message is compressed. Used by ``PerMessageDeflateHandler`` and by
/// message handlers that parse frames themselves.
///
/// Inflated messages are capped at `configuration.maxDecompressedSize`
/// (`PerMessageDeflateError.messageTooLarge`). RSV1 on a data frame that starts a message marks
/// it compressed and is consumed; RSV1 anywhere else (a continuation, a control frame, a new
/// message inside one) is handed back set, for the message handler to refuse.
package final class PerMessageDeflateInflater {
    private let parameters: PerMessageDeflateParameters
    private let configuration: PerMessageDeflateConfiguration
    private let shared: LoopStreams
    private var ownInflater: ZlibStream?
    /// The message being received: whether it is compressed, how much it inflated to so far,
    /// and (for a fragmented compressed message without context takeover) its private inflater.
    private var message: (compressed: Bool, produced: Int, inflater: ZlibStream?)?

    /// Creates the inbound state for negotiated `parameters`; must be called on `eventLoop`, the
    /// connection's, whose shared streams it uses.
    package init(
        parameters: PerMessageDeflateParameters,
        configuration: PerMessageDeflateConfiguration,
        eventLoop: any EventLoop
    ) {
        self.parameters = parameters
        self.configuration = configuration
        self.shared = LoopStreams.forLoop(eventLoop, configuration: configuration)
    }

    /// Takes one frame's unmasked `payload`.
    ///
    /// - Returns: the payload to hand on (inflated when the frame belongs to a compressed
    ///   message) and whether RSV1 remains set.
    package func receive(
        fin: Bool,
        rsv1: Bool,
        opcode: WebSocketOpcode,
        payload: ByteBuffer,
        allocator: ByteBufferAllocator
    ) throws(PerMessageDeflateError) -> (data: ByteBuffer, rsv1: Bool) {
        switch opcode {
        case .text, .binary:
            guard rsv1 else {
                if self.message == nil || self.message?.compressed == false {
                    self.message = fin ? nil : (false, 0, nil)
                }
                return (payload, false)
            }
            if self.message != nil {
                // A new data frame inside a message: the message handler refuses it.
                return (payload, true)
            }
            let inflater =
                fin || !self.parameters.clientNoContextTakeover ? nil : try? ZlibStream(inflateWindowBits: 15)
            self.message = (true, 0, inflater)
            return (try self.inflate(fin: fin, payload: payload, allocator: allocator), false)
        case .continuation:
            if let message = self.message, message.compressed, !rsv1 {
                return (try self.inflate(fin: fin, payload: payload, allocator: allocator), false)
            }
            if fin { self.message = nil }
            return (payload, rsv1)
        default:
            return (payload, rsv1)
        }
    }

    private func inflater(for message: (compressed: Bool, produced: Int, inflater: ZlibStream?)) -> ZlibStream? {
        if let own = message.inflater { return own }
        if self.parameters.clientNoContextTakeover { return self.shared.inflater() }
        if self.ownInflater == nil { self.ownInflater = try? ZlibStream(inflateWindowBits: 15) }
        return self.ownInflater
    }

    private func inflate(
        fin: Bool,
        payload: ByteBuffer,
        allocator: ByteBufferAllocator
    ) throws(PerMessageDeflateError) -> ByteBuffer {
        guard var message = self.message, let inflater = self.inflater(for: message) else {
            throw .zlibFailure(-4)
        }
        var output = allocator.buffer(capacity: payload.readableBytes * 2 + 64)
        do {
            message.produced += try inflater.inflate(
                payload.readableBytesView,
                into: &output,
                alreadyProduced: message.produced,
                limit: self.configuration.maxDecompressedSize
            )
            if fin {
                // RFC 7692 §7.2.2: put back the 00 00 FF FF that the sender stripped.
                let trailer = ByteBuffer(bytes: [0x00, 0x00, 0xFF, 0xFF])
                message.produced += try inflater.inflate(
                    trailer.readableBytesView,
                    into: &output,
                    alreadyProduced: message.produced,
                    limit: self.configuration.maxDecompressedSize
                )
                if self.parameters.clientNoContextTakeover { inflater.reset() }
                self.message = nil
            } else {
                self.message = message
            }
        } catch {
            inflater.reset()
            self.message = nil
            throw error
        }
        return output
    }
}

@available(*, unavailable)
extension PerMessageDeflateInflater: Sendable {}

/// The zlib streams one event loop shares among its connections (used only between messages'
/// boundaries: each use starts from a reset stream and ends with a reset).
package final class LoopStreams {
    private var deflaters: [Int: ZlibStream] = [:]
    private var sharedInflater: ZlibStream?
    private let configuration: PerMessageDeflateConfiguration
    /// Recent compressions, keyed by the identity of their source buffer. Each entry keeps its
    /// source alive, so the storage cannot be freed and reused while cached, and copy-on-write
    /// means nobody can change its bytes in place: same storage, offset and length means same
    /// content.
    private var recent: [(source: ByteBuffer, window: Int, compressed: ByteBuffer)] = []
    private static let recentLimit = 4
    /// How many messages this loop compressed (for tests).
    package private(set) var compressions = 0

    private static let all = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<LoopStreams>]>([:])

    private init(configuration: PerMessageDeflateConfiguration) {
        self.configuration = configuration
    }

    /// The streams of `loop` (made on first use). Must be called on `loop`.
    package static func forLoop(_ loop: any EventLoop, configuration: PerMessageDeflateConfiguration) -> LoopStreams {
        let key = ObjectIdentifier(loop)
        return Self.all.withLockedValue { all in
            if let existing = all[key] { return existing.value }
            let streams = LoopStreams(configuration: configuration)
            all[key] = NIOLoopBound(streams, eventLoop: loop)
            return streams
        }
    }

    func deflater(windowBits: Int) -> ZlibStream? {
        if let existing = self.deflaters[windowBits] { return existing }
        let made = try? ZlibStream(
            deflateWindowBits: Int32(windowBits),
            memLevel: Int32(self.configuration.memoryLevel),
            level: Int32(self.configuration.compressionLevel)
        )
        self.deflaters[windowBits] = made
        return made
    }

    func cachedCompression(of source: ByteBuffer, window: Int) -> ByteBuffer? {
        guard !self.recent.isEmpty else { return nil }
        let key = Self.identity(of: source)
        for entry in self.recent where entry.window == window && Self.identity(of: entry.source) == key {
            return entry.compressed
        }
        return nil
    }

    func remember(source: ByteBuffer, window: Int, compressed: ByteBuffer) {
        self.compressions += 1
        if self.recent.count == Self.recentLimit { self.recent.removeFirst() }
        self.recent.append((source, window, compressed))
    }

    private static func identity(of buffer: ByteBuffer) -> Identity {
        buffer.withUnsafeReadableBytes { Identity(address: UInt(bitPattern: $0.baseAddress), count: $0.count) }
    }

    private struct Identity: Equatable {
        var address: UInt
        var count: Int
    }

    func inflater() -> ZlibStream? {
        if self.sharedInflater == nil { self.sharedInflater = try? ZlibStream(inflateWindowBits: 15) }
        return self.sharedInflater
    }
}

@available(*, unavailable)
extension LoopStreams: Sendable {}
