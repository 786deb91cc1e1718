import EngineIOCore
package import NIOCore
package import NIOWebSocket
import PerMessageDeflate

#if canImport(Glibc)
import Glibc
#endif

/// Turns the bytes of a WebSocket into Engine.IO packets for one session, and enforces RFC 6455
/// on the way.
///
/// It cuts frames out of the bytes itself (RFC 6455 §5.2; no decoder handler, no frame object per
/// frame): frames above the size limit are refused with close 1009, fragmented or long control
/// frames with 1002. Client frames must be masked (§5.1); with permessage-deflate negotiated,
/// their payloads are inflated here (``PerMessageDeflateInflater``; the deflate handler after
/// this one only compresses what is sent). RSV bits that no extension owns are refused (§5.2),
/// fragments are reassembled with control frames allowed in between (§5.4) under a size limit
/// (close 1009), text must be UTF-8 (§8.1, close 1007), pings are answered (§5.5.2) and the close
/// handshake is mirrored with a valid code (§7.4).
final class EngineIOWebSocketHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// Asks the handler to close the WebSocket (sent by the session as a user outbound event).
    struct CloseRequest: Sendable {
        var code: WebSocketErrorCode
        var closePacket: Bool
    }

    enum Mode {
        /// A new session opened directly over WebSocket (with the id announced in its cookie).
        /// Boxed (`indirect`), so the request does not enlarge every handler for its lifetime; the
        /// box is released once the session is open.
        indirect case handshake(EngineIORequestInfo, sessionID: String?)
        /// The session is open; the request now lives in it.
        case opened
        /// An upgrade of the polling session with this id.
        case upgrade(sid: String)
        /// A plain WebSocket echo (no Engine.IO): every message goes back as it came.
        case echo
    }

    private let server: EngineIOServer?
    private var mode: Mode
    private let maxMessageSize: Int
    private var socket: EngineIOSocket?
    /// The session itself when it lives on this channel's loop (always, unless the socket
    /// upgraded a long-polling session opened on another loop): messages go to it directly.
    private var localSession: EngineIOSession?
    private var connection: WebSocketConnection?
    private var connectionID: ObjectIdentifier?
    private var message: (opcode: WebSocketOpcode, buffer: ByteBuffer)?
    private var closing = false
    private var closeReason: EngineIOCloseReason = .transportClose

    /// The inbound half of permessage-deflate, when it was negotiated.
    private let inflater: PerMessageDeflateInflater?
    /// The largest frame payload accepted.
    private let maxFrameSize: Int
    /// Received bytes that do not make a whole frame yet (at most one frame's worth).
    private var pending: ByteBuffer?
    /// Set after a frame could not be cut (its length or shape was wrong): what follows is not
    /// frames any more and is dropped.
    private var framingBroken = false

    /// The handshake's 101 response, written ahead of everything else (with the open packet).
    private var responsePrefix: ByteBuffer?

    init(
        server: EngineIOServer,
        mode: Mode,
        maxFrameSize: Int,
        inflater: PerMessageDeflateInflater? = nil,
        responsePrefix: ByteBuffer? = nil
    ) {
        self.server = server
        self.mode = mode
        self.maxFrameSize = maxFrameSize
        self.inflater = inflater
        self.responsePrefix = responsePrefix
        self.maxMessageSize = server.configuration.maxPayload
    }

    /// A plain echo handler (the `websocket-echo` profile).
    init(
        echoWithMaxMessageSize maxMessageSize: Int,
        maxFrameSize: Int,
        inflater: PerMessageDeflateInflater?,
        responsePrefix: ByteBuffer? = nil
    ) {
        self.server = nil
        self.mode = .echo
        self.maxFrameSize = maxFrameSize
        self.inflater = inflater
        self.responsePrefix = responsePrefix
        self.maxMessageSize = maxMessageSize
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let raw = try? context.pipeline.syncOperations.handler(type: WebSocketRawWriter.self) else {
            // HTTPServer installs the writer with every WebSocket handler; without it nothing
            // could be sent.
            self.closing = true
            context.close(promise: nil)
            return
        }
        let connection = WebSocketConnection(
            channel: context.channel,
            raw: raw,
            compressionThreshold: self.inflater != nil ? self.server?.configuration.perMessageDeflate.threshold : nil,
            scheduler: self.server?.flushScheduler(for: context.eventLoop)
        )
        self.connection = connection
        self.connectionID = connection.id
        if let prefix = self.responsePrefix, let below = raw.context {
            // The 101 goes into the channel's pending writes now, below every handler: the flush
            // that sends the open packet sends it first, in the same write, and nothing this
            // handler writes itself (a pong or a close answering frames that came with the
            // handshake) can overtake it.
            self.responsePrefix = nil
            below.write(NIOAny(prefix), promise: nil)
            // Only a new session has an open packet to send it with.
            var opensSession = false
            if case .handshake = self.mode { opensSession = self.server != nil }
            if !opensSession { below.flush() }
        }
        guard let server = self.server else { return }
        switch self.mode {
        case .echo, .opened:
            break
        case .handshake(let request, let sessionID):
            self.mode = .opened
            guard
                let session = server.openSession(
                    request: request,
                    eventLoop: context.eventLoop,
                    websocket: connection,
                    id: sessionID
                )
            else {
                // The session table filled up between the upgrade check and now.
                connection.close(code: .init(codeNumber: 1013), closePacket: false)
                self.closing = true
                return
            }
            self.socket = session.handle
            self.localSession = session
        case .upgrade(let sid):
            guard let socket = server.session(id: sid) else {
                connection.close(code: .normalClosure, closePacket: false)
                self.closing = true
                return
            }
            self.socket = socket
            if socket.eventLoop === context.eventLoop { self.localSession = socket.session.value }
            socket.eventLoop.execute {
                // A second WebSocket for a session that is already upgrading or upgraded is
                // accepted at the HTTP level and then closed, leaving the first one untouched.
                if !socket.session.value.websocketAttached(connection) {
                    connection.close(code: .normalClosure, closePacket: false)
                }
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.framingBroken { return }
        var bytes = self.unwrapInboundIn(data)
        if var pending = self.pending {
            self.pending = nil
            pending.writeBuffer(&bytes)
            bytes = pending
        }
        while true {
            switch WebSocketFrameParser.cut(&bytes, maxFrameSize: self.maxFrameSize) {
            case .frame(let frame):
                self.receive(context: context, frame: frame)
                if self.framingBroken { return }
            case .needMore:
                if bytes.readableBytes > 0 { self.pending = bytes }
                return
            case .tooLarge:
                self.framingBroken = true
                return self.fail(context: context, code: .messageTooLarge, reason: .payloadTooLarge)
            case .malformedControl:
                self.framingBroken = true
                return self.fail(context: context, code: .protocolError, reason: .transportError)
            }
        }
    }

    private func receive(context: ChannelHandlerContext, frame: WebSocketFrameParser.Frame) {
        if self.closing && frame.opcode != .connectionClose { return }
        // RFC 6455 §5.1: a client masks every frame.
        guard let key = frame.maskKey else {
            return self.fail(context: context, code: .protocolError, reason: .transportError)
        }
        var frame = frame
        if let inflater = self.inflater {
            var payload = frame.data
            WebSocketMasking.unmask(&payload, key: key)
            do {
                let (data, rsv1) = try inflater.receive(
                    fin: frame.fin,
                    rsv1: frame.rsv1,
                    opcode: frame.opcode,
                    payload: payload,
                    allocator: context.channel.allocator
                )
                frame.data = data
                frame.rsv1 = rsv1
                frame.maskKey = nil
            } catch {
                return self.failInflating(context: context, error: error)
            }
        }
        guard !frame.rsv1, !frame.rsv2, !frame.rsv3 else {
            return self.fail(context: context, code: .protocolError, reason: .transportError)
        }
        switch frame.opcode {
        case .connectionClose:
            self.receivedClose(context: context, frame: frame)
        case .ping:
            guard frame.fin else { return self.fail(context: context, code: .protocolError, reason: .transportError) }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .text, .binary:
            guard self.message == nil else {
                return self.fail(context: context, code: .protocolError, reason: .transportError)
            }
            if frame.fin, frame.opcode == .text, let key = frame.maskKey, !self.isEcho,
                frame.data.readableBytes <= self.maxMessageSize,
                let message = MaskedText.asciiMessage(masked: frame.data, key: key)
            {
                // The common case, an ASCII message: unmasked straight into its string.
                return self.forward(.message(message))
            }
            let data = frame.unmaskedData
            guard data.readableBytes <= self.maxMessageSize else {
                return self.fail(context: context, code: .messageTooLarge, reason: .payloadTooLarge)
            }
            if frame.fin {
                self.deliver(context: context, opcode: frame.opcode, data: data)
            } else {
                self.message = (frame.opcode, data)
            }
        case .continuation:
            guard var message = self.message else {
                return self.fail(context: context, code: .protocolError, reason: .transportError)
            }
            var data = frame.unmaskedData
            guard message.buffer.readableBytes + data.readableBytes <= self.maxMessageSize else {
                return self.fail(context: context, code: .messageTooLarge, reason: .payloadTooLarge)
            }
            self.message = nil
            message.buffer.writeBuffer(&data)
            if frame.fin {
                self.deliver(context: context, opcode: message.opcode, data: message.buffer)
            } else {
                self.message = message
            }
        default:
            self.fail(context: context, code: .protocolError, reason: .transportError)
        }
    }

    private var isEcho: Bool {
        if case .echo = self.mode { return true }
        return false
    }

    private func deliver(context: ChannelHandlerContext, opcode: WebSocketOpcode, data: ByteBuffer) {
        if case .echo = self.mode {
            if opcode == .text, String(validating: data.readableBytesView, as: UTF8.self) == nil {
                return self.fail(context: context, code: .dataInconsistentWithMessage, reason: .transportError)
            }
            // From the pipeline's end, through the permessage-deflate handler when there is one.
            context.channel.writeAndFlush(WebSocketFrame(fin: true, opcode: opcode, data: data), promise: nil)
            return
        }
        let packet: EngineIOPacket
        if opcode == .binary {
            packet = .binaryMessage(data)
        } else if data.readableBytes > 0, data.getInteger(at: data.readerIndex, as: UInt8.self) == UInt8(ascii: "4") {
            // The common case, a message: one UTF-8 validation that also makes its string (the
            // type digit is ASCII, so the rest being valid means the whole frame is).
            let message = data.withUnsafeReadableBytes { raw in
                String(
                    validating: UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self).dropFirst()),
                    as: UTF8.self
                )
            }
            guard let message else {
                return self.fail(context: context, code: .dataInconsistentWithMessage, reason: .transportError)
            }
            packet = .message(message)
        } else {
            guard String(validating: data.readableBytesView, as: UTF8.self) != nil else {
                return self.fail(context: context, code: .dataInconsistentWithMessage, reason: .transportError)
            }
            do {
                packet = try EngineIOPacket.decodeText(data.readableBytesView)
            } catch {
                return self.fail(context: context, code: .protocolError, reason: .parseError)
            }
        }
        self.forward(packet)
    }

    private func forward(_ packet: EngineIOPacket) {
        if case .upgrade = self.mode, let server, let socket = self.socket, let id = self.connectionID {
            // Until the upgrade packet has gone, the packets of an upgrading WebSocket take their
            // turn among the session's polling requests (which may arrive on other loops), so
            // that the upgrade takes effect where the client put it: a poll the client sends
            // right after its `5` finds the session upgraded (Engine.IO v4 upgrade, step 5).
            if case .upgrade = packet { self.mode = .opened }
            let turn = server.turn(of: socket)
            if let session = self.localSession {
                session.inTurn(turn) { session.received(packet, viaConnection: id) }
            } else {
                socket.eventLoop.execute {
                    let session = socket.session.value
                    session.inTurn(turn) { session.received(packet, viaConnection: id) }
                }
            }
            return
        }
        if let session = self.localSession {
            session.received(packet, viaConnection: self.connectionID)
            return
        }
        guard let socket = self.socket, let id = self.connectionID else { return }
        socket.eventLoop.execute { socket.session.value.received(packet, viaConnection: id) }
    }

    private func receivedClose(context: ChannelHandlerContext, frame: WebSocketFrameParser.Frame) {
        if self.closing {
            context.close(promise: nil)
            return
        }
        var data = frame.unmaskedData
        var reply: WebSocketErrorCode? = nil
        if data.readableBytes == 1 {
            reply = .protocolError
        } else if let code = data.readInteger(as: UInt16.self) {
            if !Self.isValidCloseCode(code) {
                reply = .protocolError
            } else if String(validating: data.readableBytesView, as: UTF8.self) == nil {
                reply = .dataInconsistentWithMessage
            } else {
                reply = WebSocketErrorCode(codeNumber: Int(code))
            }
        }
        self.closing = true
        var payload = context.channel.allocator.buffer(capacity: 2)
        if let reply { payload.write(webSocketErrorCode: reply) }
        let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)
        let channel = context.channel
        // The TCP connection closes right after the reply: corked, the reply and the FIN leave in one
        // segment instead of two (one loopback or network round of work less per connection).
        Self.cork(channel)
        context.writeAndFlush(self.wrapOutboundOut(close)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Sets `TCP_CORK` on the channel's socket (Linux): what is written next waits in the kernel
    /// until the socket closes (or 200 ms pass), so a last write and the FIN share a segment.
    static func cork(_ channel: any Channel) {
        #if os(Linux)
        let option = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: CInt(TCP_CORK)))
        try? channel.syncOptions?.setOption(option, value: 1)
        #endif
    }

    /// RFC 6455 §7.4: codes a peer may send.
    static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014: return true
        case 3000...4999: return true
        default: return false
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let request = event as? CloseRequest else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        promise?.succeed()
        guard !self.closing else { return }
        if request.closePacket {
            var buffer = context.channel.allocator.buffer(capacity: 1)
            EngineIOPacket.close.writeText(into: &buffer)
            context.write(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: buffer)), promise: nil)
        }
        self.sendClose(context: context, code: request.code)
        // The session closed this socket itself; it needs no notification.
        self.socket = nil
        self.localSession = nil
    }

    private func fail(context: ChannelHandlerContext, code: WebSocketErrorCode, reason: EngineIOCloseReason) {
        guard !self.closing else { return }
        self.closeReason = reason
        self.sendClose(context: context, code: code)
        self.notifyClosed()
    }

    private func sendClose(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        self.closing = true
        self.message = nil
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        // RFC 6455 §7.1.1: wait (bounded) for the client's close frame before closing TCP, and keep
        // reading meanwhile, so that the close frame is not lost to a connection reset.
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: HTTPRequestHandler.closeLinger) { channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.notifyClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // While closing, the linger timer or the client's own close ends the connection.
        if self.closing { return }
        self.closeReason = .transportError
        context.close(promise: nil)
    }

    /// A compressed message that could not be inflated: RFC 6455 §7.4.1 codes.
    private func failInflating(context: ChannelHandlerContext, error: PerMessageDeflateError) {
        switch error {
        case .messageTooLarge: self.fail(context: context, code: .messageTooLarge, reason: .payloadTooLarge)
        case .invalidData: self.fail(context: context, code: .dataInconsistentWithMessage, reason: .transportError)
        case .protocolViolation: self.fail(context: context, code: .protocolError, reason: .transportError)
        case .zlibFailure: self.fail(context: context, code: .unexpectedServerError, reason: .transportError)
        }
    }

    private func notifyClosed() {
        guard let socket = self.socket, let connection = self.connection else { return }
        self.socket = nil
        self.localSession = nil
        let reason = self.closeReason
        if socket.eventLoop.inEventLoop {
            socket.session.value.websocketClosed(connection, reason: reason)
        } else {
            socket.eventLoop.execute { socket.session.value.websocketClosed(connection, reason: reason) }
        }
    }
}

@available(*, unavailable)
extension EngineIOWebSocketHandler: Sendable {}

/// Unmasking client frames straight into strings.
package enum MaskedText {
    /// The text of an Engine.IO message packet (`4…`) in a masked frame, unmasked directly into a
    /// string, when every byte is ASCII (so valid UTF-8); `nil` otherwise, for the general path.
    /// This saves the unmasked copy of the frame and a second UTF-8 validation per message.
    package static func asciiMessage(masked data: ByteBuffer, key: WebSocketMaskingKey) -> String? {
        self.asciiMessage(
            masked: data,
            key: UInt32(key[0]) << 24 | UInt32(key[1]) << 16 | UInt32(key[2]) << 8 | UInt32(key[3])
        )
    }

    /// The same, with the key as it appears on the wire read as a big-endian integer.
    package static func asciiMessage(masked data: ByteBuffer, key: UInt32) -> String? {
        let count = data.readableBytes
        guard count >= 1 else { return nil }
        let k = (
            UInt8(truncatingIfNeeded: key >> 24), UInt8(truncatingIfNeeded: key >> 16),
            UInt8(truncatingIfNeeded: key >> 8), UInt8(truncatingIfNeeded: key)
        )
        return data.withUnsafeReadableBytes { raw -> String? in
            guard raw[0] ^ k.0 == UInt8(ascii: "4") else { return nil }
            // Output byte j is input byte j + 1, so eight bytes at a time use the key rotated by one.
            let rotated = UInt32(k.1) | UInt32(k.2) << 8 | UInt32(k.3) << 16 | UInt32(k.0) << 24
            let wordKey = UInt64(littleEndian: UInt64(rotated) | UInt64(rotated) << 32)
            var high: UInt64 = 0
            let length = count - 1
            let text = String(unsafeUninitializedCapacity: length) { out in
                let source = raw.baseAddress! + 1
                let target = UnsafeMutableRawPointer(out.baseAddress!)
                var j = 0
                while j + 8 <= length {
                    let word = source.loadUnaligned(fromByteOffset: j, as: UInt64.self) ^ wordKey
                    target.storeBytes(of: word, toByteOffset: j, as: UInt64.self)
                    high |= word
                    j += 8
                }
                while j < length {
                    let byte =
                        source.load(fromByteOffset: j, as: UInt8.self)
                        ^ UInt8(truncatingIfNeeded: rotated >> UInt32((j & 3) * 8))
                    out[j] = byte
                    high |= UInt64(byte)
                    j += 1
                }
                return length
            }
            return high & 0x8080_8080_8080_8080 == 0 ? text : nil
        }
    }
}
