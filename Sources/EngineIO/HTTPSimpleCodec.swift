import NIOCore
import NIOHTTP1

/// HTTP/1.1 for the requests long-polling clients send, in place of NIO's request decoder,
/// pipelining handler, response encoder and header validator (a quarter of a polling echo's
/// cost in the profile): request heads ``HTTPFastHead`` reads (`GET`, `POST` with a plain
/// `Content-Length`, `OPTIONS`), and responses framed by `Content-Length`, which
/// ``HTTPRequestHandler`` always sets.
///
/// Between it and ``HTTPRequestHandler`` travel the same parts as with NIO's codec, with the
/// same pipelining rule: a request is delivered once the response to the one before it has
/// ended, and reading stops while a further request waits. Chunked bodies are read by
/// ``HTTPChunkedDecoder``; a body it refuses (a chunk over the limits, extensions over 16 KiB, a
/// malformed coding) is reported to ``HTTPRequestHandler`` as an ``HTTPRequestError``, which
/// answers it, and nothing after it is read. A request head it does not read (anything unusual,
/// another transfer coding, an `Upgrade` or `Expect` header, a head over
/// ``HTTPFastHead/maxLength``) arrives between requests: it then installs NIO's codec after
/// itself (held to the same limits), hands it the bytes unchanged and leaves, so that NIO's
/// parser answers (or refuses) everything it does not handle.
final class HTTPSimpleCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = ByteBuffer

    private enum Reading {
        case head
        case body(remaining: Int)
        case chunked(HTTPChunkedDecoder)
        /// A body was refused: nothing more is read (the connection is being closed).
        case failed
    }

    /// Bodies up to this size are copied behind their response head (one buffer to write).
    static let coalescedBodyLimit = 16_384

    private let limits: HTTPRequestLimits
    private var reading = Reading.head
    /// Bytes read and not yet delivered.
    private var buffered: ByteBuffer?
    /// A request has been delivered whole and its response has not ended yet.
    private var awaitingResponse = false
    private var delivering = false
    /// A read held back while a request waits for the response before it.
    private var heldRead = false
    /// NIO's codec took over: everything passes through until this handler is gone.
    private var handedOver = false
    /// A response head had headers that may not be sent: everything after it is refused.
    private var dropping = false
    /// The response head (and a small body) not yet written.
    private var pending: ByteBuffer?
    /// A response has ended since the last flush.
    private var responseEnded = false

    /// - Parameter limits: what heads and chunked bodies are held to (and the NIO codec it may
    ///   hand over to).
    init(limits: HTTPRequestLimits) {
        self.limits = limits
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.handedOver else { return context.fireChannelRead(data) }
        var bytes = Self.unwrapInboundIn(data)
        if var earlier = self.buffered, earlier.readableBytes > 0 {
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        self.buffered = bytes
        self.deliver(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.buffered = nil
        self.pending = nil
        context.fireChannelInactive()
    }

    /// Delivers what is buffered, request by request, as far as the pipelining rule allows.
    private func deliver(context: ChannelHandlerContext) {
        guard !self.delivering else { return }
        self.delivering = true
        defer { self.delivering = false }
        while !self.handedOver, context.channel.isActive, var bytes = self.buffered, bytes.readableBytes > 0 {
            switch self.reading {
            case .body(let remaining):
                let count = min(remaining, bytes.readableBytes)
                let part = bytes.readSlice(length: count)!
                self.buffered = bytes
                if count == remaining {
                    self.reading = .head
                    self.awaitingResponse = true
                    context.fireChannelRead(Self.wrapInboundOut(.body(part)))
                    context.fireChannelRead(Self.wrapInboundOut(.end(nil)))
                } else {
                    self.reading = .body(remaining: remaining - count)
                    context.fireChannelRead(Self.wrapInboundOut(.body(part)))
                }
            case .chunked(var decoder):
                let event: HTTPChunkedDecoder.Event?
                do {
                    event = try decoder.next(from: &bytes)
                } catch {
                    self.reading = .failed
                    self.buffered = nil
                    context.fireErrorCaught(HTTPRequestError(error))
                    return
                }
                self.buffered = bytes
                switch event {
                case nil:
                    self.reading = .chunked(decoder)
                case .data(let part):
                    self.reading = .chunked(decoder)
                    context.fireChannelRead(Self.wrapInboundOut(.body(part)))
                case .end:
                    self.reading = .head
                    self.awaitingResponse = true
                    context.fireChannelRead(Self.wrapInboundOut(.end(nil)))
                }
            case .failed:
                self.buffered = nil
            case .head:
                if self.awaitingResponse { return }
                switch HTTPFastHead.read(bytes, limit: self.limits.maxHeadSize) {
                case .needMore:
                    return
                case .notHandled, .head(_, _, _, special: true):
                    return self.handOver(context: context, bytes: bytes)
                case .head(let head, let length, let body, special: false):
                    bytes.moveReaderIndex(forwardBy: length)
                    self.buffered = bytes
                    switch body {
                    case .length(0):
                        self.awaitingResponse = true
                        context.fireChannelRead(Self.wrapInboundOut(.head(head)))
                        context.fireChannelRead(Self.wrapInboundOut(.end(nil)))
                    case .length(let length):
                        self.reading = .body(remaining: length)
                        context.fireChannelRead(Self.wrapInboundOut(.head(head)))
                    case .chunked:
                        self.reading = .chunked(
                            HTTPChunkedDecoder(
                                maxBodySize: self.limits.maxBodySize,
                                maxTrailerSize: self.limits.maxHeadSize
                            )
                        )
                        context.fireChannelRead(Self.wrapInboundOut(.head(head)))
                    }
                }
            }
        }
        if let bytes = self.buffered, bytes.readableBytes == 0 { self.buffered = nil }
    }

    func read(context: ChannelHandlerContext) {
        if !self.handedOver, self.awaitingResponse, let bytes = self.buffered, bytes.readableBytes > 0 {
            self.heldRead = true
        } else {
            context.read()
        }
    }

    /// Installs NIO's HTTP/1.1 codec after this handler (between requests: nothing is owed to
    /// the client), passes it `bytes` and leaves.
    private func handOver(context: ChannelHandlerContext, bytes: ByteBuffer) {
        self.handedOver = true
        self.buffered = nil
        let pipeline = context.pipeline.syncOperations
        do {
            try self.limits.addNIOCodec(to: pipeline, position: .after(self))
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(NIOAny(bytes))
        if self.heldRead {
            self.heldRead = false
            context.read()
        }
        pipeline.removeHandler(context: context, promise: nil)
    }

    // MARK: Responses

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !self.handedOver else { return context.write(data, promise: promise) }
        guard !self.dropping else {
            promise?.fail(HTTPParserError.invalidHeaderToken)
            return
        }
        switch Self.unwrapOutboundIn(data) {
        case .head(let head):
            guard let encoded = Self.encode(head, allocator: context.channel.allocator) else {
                // What NIO's header validator does.
                self.dropping = true
                self.pending = nil
                promise?.fail(HTTPParserError.invalidHeaderToken)
                context.fireErrorCaught(HTTPParserError.invalidHeaderToken)
                return
            }
            self.pending = encoded
            if let promise { self.writePending(context: context, promise: promise) }
        case .body(.byteBuffer(var body)):
            if promise == nil, var pending = self.pending, body.readableBytes <= Self.coalescedBodyLimit {
                self.pending = nil
                pending.writeBuffer(&body)
                self.pending = pending
            } else {
                self.writePending(context: context, promise: nil)
                context.write(Self.wrapOutboundOut(body), promise: promise)
            }
        case .body(.fileRegion(let region)):
            self.writePending(context: context, promise: nil)
            context.write(NIOAny(IOData.fileRegion(region)), promise: promise)
        case .end:
            // Content-Length framing: no bytes of its own (and no trailers, as with NIO's encoder).
            if self.pending != nil || promise != nil {
                self.writePending(context: context, promise: promise)
            }
            self.awaitingResponse = false
            self.responseEnded = true
        }
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
        // Once a response has ended and gone out, the next request (if one waits) is delivered
        // (or by the delivery loop the response was written from). Not from `write`: the hand-
        // over to NIO's codec removes this handler, and the flush of a `writeAndFlush` comes
        // through it right after the write.
        guard self.responseEnded, !self.handedOver else { return }
        self.responseEnded = false
        if let bytes = self.buffered, bytes.readableBytes > 0 { self.deliver(context: context) }
        self.releaseRead(context: context)
    }

    private func writePending(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let bytes = self.pending ?? context.channel.allocator.buffer(capacity: 0)
        self.pending = nil
        context.write(Self.wrapOutboundOut(bytes), promise: promise)
    }

    private func releaseRead(context: ChannelHandlerContext) {
        guard self.heldRead, !self.handedOver else { return }
        if self.awaitingResponse, let bytes = self.buffered, bytes.readableBytes > 0 { return }
        self.heldRead = false
        context.read()
    }

    /// The response head as NIO's encoder writes it (framing headers as it leaves them for a
    /// response with `Content-Length`), or `nil` when a header or the status may not be sent.
    static func encode(_ head: HTTPResponseHead, allocator: ByteBufferAllocator) -> ByteBuffer? {
        let code = head.status.code
        guard (100...999).contains(code), Self.isValidValue(head.status.reasonPhrase) else { return nil }
        // 1xx, 204 and 304 responses have no body, so no framing headers (as NIO's encoder).
        let bodyless = code < 200 || code == 204 || code == 304
        var hasLength = false
        var buffer = allocator.buffer(capacity: 256)
        if head.version == .http1_1 {
            buffer.writeStaticString("HTTP/1.1 ")
        } else {
            buffer.writeString("HTTP/\(head.version.major).\(head.version.minor) ")
        }
        // Three digits (checked above), then a space.
        let digits = UInt32(code / 100) << 24 | UInt32(code / 10 % 10) << 16 | UInt32(code % 10) << 8
        buffer.writeInteger(digits | 0x3030_3020)
        buffer.writeString(head.status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        for (name, value) in head.headers {
            guard Self.isValidName(name), Self.isValidValue(value) else { return nil }
            let isLength = HTTPRequestHandler.equalsIgnoringASCIICase(name.utf8, "content-length")
            // Transfer-Encoding never goes out: with a Content-Length NIO's encoder drops it, and
            // without one (and with a body) the response is refused below.
            if HTTPRequestHandler.equalsIgnoringASCIICase(name.utf8, "transfer-encoding") || bodyless && isLength {
                continue
            }
            hasLength = hasLength || isLength
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        // Every response HTTPRequestHandler writes has a Content-Length; without one the body
        // would need chunked framing, which this codec does not do.
        guard hasLength || bodyless else {
            assertionFailure("a response without Content-Length reached HTTPSimpleCodec")
            return nil
        }
        return buffer
    }

    /// What NIO's validator allows in a header name: an RFC 7230 `token`.
    private static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(HTTPFastHead.isTokenByte)
    }

    /// What NIO's validator allows in a header value: no control character but tab.
    private static func isValidValue(_ value: String) -> Bool {
        value.utf8.allSatisfy(HTTPFastHead.isFieldValueByte)
    }
}

@available(*, unavailable)
extension HTTPSimpleCodec: Sendable {}
