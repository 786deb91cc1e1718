import NIOCore
import PerMessageDeflate

/// What a benchmark connection tells the scenario that owns it. Called on the connection's
/// event loop.
protocol BenchConnectionDelegate: AnyObject {
    /// The Socket.IO namespace CONNECT was acknowledged.
    func connectionDidConnect(_ connection: any BenchConnection)
    /// An ACK packet arrived; `payload` is its JSON array text.
    func connection(_ connection: any BenchConnection, didReceiveAck id: Int, payload: ByteBufferView)
    /// An EVENT packet arrived; `payload` is its JSON array text.
    func connection(_ connection: any BenchConnection, didReceiveEvent payload: ByteBufferView)
    /// The connection ended; `error` says why when it was not the benchmark's own doing.
    func connectionDidClose(_ connection: any BenchConnection, error: String?)
}

/// One simulated Socket.IO client, over either transport.
protocol BenchConnection: AnyObject {
    /// A number the scenario assigned.
    var index: Int { get }
    /// Queues a Socket.IO packet (the text after the Engine.IO `4`), written at the next flush.
    func sendSocketIO(_ build: (inout ByteBuffer) -> Void)
    /// Sends what was queued.
    func flush()
    /// Ends the connection (a close frame or close packet first, when possible).
    func close()
}

/// A Socket.IO packet as the benchmark needs it: the type and, for ACK, the id.
enum SocketIOWire {
    /// Handles one Engine.IO packet of text `packet`; returns the Engine.IO packets to send back
    /// (a pong) through `reply`.
    static func handleEngineIOPacket(
        _ packet: ByteBufferView,
        connection: any BenchConnection,
        delegate: any BenchConnectionDelegate,
        namespace: String,
        reply: (StaticString) -> Void,
        sendConnect: () -> Void,
        fail: (String) -> Void
    ) {
        guard let type = packet.first else { return fail("empty Engine.IO packet") }
        switch type {
        case UInt8(ascii: "0"): sendConnect()
        case UInt8(ascii: "2"):
            // A probe ping only happens during an upgrade, which the benchmark never starts.
            reply("3")
        case UInt8(ascii: "4"):
            handleSocketIOPacket(packet.dropFirst(), connection: connection, delegate: delegate, fail: fail)
        case UInt8(ascii: "1"): fail("server sent an Engine.IO close packet")
        case UInt8(ascii: "6"), UInt8(ascii: "3"): break
        default: fail("unexpected Engine.IO packet type \(Character(Unicode.Scalar(type)))")
        }
    }

    static func handleSocketIOPacket(
        _ packet: ByteBufferView.SubSequence,
        connection: any BenchConnection,
        delegate: any BenchConnectionDelegate,
        fail: (String) -> Void
    ) {
        guard let type = packet.first else { return fail("empty Socket.IO packet") }
        var index = packet.index(after: packet.startIndex)
        // Skip a namespace ("/name,") when present.
        if index < packet.endIndex, packet[index] == UInt8(ascii: "/") {
            while index < packet.endIndex, packet[index] != UInt8(ascii: ",") { index += 1 }
            if index < packet.endIndex { index += 1 }
        }
        switch type {
        case UInt8(ascii: "0"): delegate.connectionDidConnect(connection)
        case UInt8(ascii: "2"):
            while index < packet.endIndex, packet[index] != UInt8(ascii: "[") { index += 1 }
            delegate.connection(connection, didReceiveEvent: ByteBufferView(packet[index...]))
        case UInt8(ascii: "3"):
            var id = 0
            while index < packet.endIndex, packet[index] >= UInt8(ascii: "0"), packet[index] <= UInt8(ascii: "9") {
                id = id &* 10 &+ Int(packet[index] - UInt8(ascii: "0"))
                index += 1
            }
            delegate.connection(connection, didReceiveAck: id, payload: ByteBufferView(packet[index...]))
        case UInt8(ascii: "4"): fail("CONNECT_ERROR: \(String(decoding: packet.dropFirst(), as: UTF8.self))")
        case UInt8(ascii: "1"): fail("server sent a Socket.IO DISCONNECT")
        default: fail("unexpected Socket.IO packet type \(Character(Unicode.Scalar(type)))")
        }
    }
}

/// A benchmark client over WebSocket (`transport=websocket`, no polling first): a hand-written
/// RFC 6455 client that masks every frame and parses the server's unmasked frames in place. With
/// `deflate` it offers permessage-deflate and inflates the server's compressed messages (it sends
/// its own uncompressed, which RFC 7692 allows).
final class WebSocketBenchConnection: ChannelInboundHandler, BenchConnection {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case upgrading
        case open
        /// Our close frame is sent; waiting for the server to close the TCP connection.
        case closing
        case closed
    }

    let index: Int
    private let host: String
    private let path: String
    private let namespace: String
    private let delegate: any BenchConnectionDelegate
    private var state = State.upgrading
    private var context: ChannelHandlerContext?
    private var inbound: ByteBuffer
    private var outbound: ByteBuffer
    private var message: ByteBuffer
    private let maskKey: UInt32
    private var pendingWrites = false
    /// Closes the TCP connection when the server has not within `closeTimeout` of our close frame.
    private var closeTimer: Scheduled<Void>?
    private let deflate: Bool
    /// Whether the message being received (fragments so far in `message`) is compressed.
    private var compressed = false
    /// Created with the first compressed message, kept for the connection: a window kept across
    /// messages serves servers with and without context takeover alike.
    private var inflater: ZlibStream?

    init(
        index: Int,
        host: String,
        path: String,
        namespace: String,
        deflate: Bool,
        delegate: any BenchConnectionDelegate
    ) {
        self.index = index
        self.host = host
        self.path = path
        self.namespace = namespace
        self.deflate = deflate
        self.delegate = delegate
        let allocator = ByteBufferAllocator()
        self.inbound = allocator.buffer(capacity: 0)
        self.outbound = allocator.buffer(capacity: 0)
        self.message = allocator.buffer(capacity: 0)
        self.maskKey = UInt32.random(in: 1...UInt32.max)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { sendUpgrade(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendUpgrade(context: context)
        context.fireChannelActive()
    }

    private func sendUpgrade(context: ChannelHandlerContext) {
        var request = context.channel.allocator.buffer(capacity: 256)
        let separator = path.contains("?") ? "&" : "?"
        request.writeString(
            "GET \(path)\(separator)EIO=4&transport=websocket HTTP/1.1\r\nHost: \(host)\r\n"
                + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                + "Sec-WebSocket-Version: 13\r\n"
                + (deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "")
                + "\r\n"
        )
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state != .closing else { return }  // the server's close reply; its FIN follows
        var buffer = unwrapInboundIn(data)
        if inbound.readableBytes == 0 {
            inbound = buffer
        } else {
            inbound.writeBuffer(&buffer)
        }
        if state == .upgrading {
            guard let end = inbound.readableBytesView.firstRange(of: [13, 10, 13, 10]) else {
                if inbound.readableBytes > 16_384 { fail("oversized upgrade response") }
                return
            }
            let headerLength = end.upperBound - inbound.readerIndex
            let head = inbound.readString(length: headerLength) ?? ""
            guard head.hasPrefix("HTTP/1.1 101") else {
                fail("upgrade refused: \(head.prefix(while: { $0 != "\r" }))")
                return
            }
            if deflate, !head.lowercased().contains("\r\nsec-websocket-extensions: permessage-deflate") {
                fail("the server declined permessage-deflate")
                return
            }
            state = .open
        }
        parseFrames()
        if inbound.readableBytes == 0 {
            inbound.clear()
        } else if inbound.readerIndex > 65_536 {
            inbound.discardReadBytes()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
    }

    private func parseFrames() {
        while state == .open {
            let view = inbound.readableBytesView
            guard view.count >= 2 else { return }
            let first = view[view.startIndex]
            let second = view[view.startIndex + 1]
            var headerLength = 2
            var length = Int(second & 0x7F)
            if length == 126 {
                guard view.count >= 4 else { return }
                length = Int(view[view.startIndex + 2]) << 8 | Int(view[view.startIndex + 3])
                headerLength = 4
            } else if length == 127 {
                guard view.count >= 10 else { return }
                length = 0
                for i in 2..<10 { length = length << 8 | Int(view[view.startIndex + i]) }
                headerLength = 10
            }
            if second & 0x80 != 0 { return fail("server sent a masked frame") }
            guard view.count >= headerLength + length else { return }
            inbound.moveReaderIndex(forwardBy: headerLength)
            let payload = inbound.readSlice(length: length)!
            let fin = first & 0x80 != 0
            let rsv1 = first & 0x40 != 0
            if rsv1 && (!deflate || first & 0x0F == 0x0 || first & 0x08 != 0) {
                return fail("RSV1 on a frame that cannot be compressed")
            }
            switch first & 0x0F {
            case 0x1, 0x2:
                compressed = rsv1
                if fin && !rsv1 {
                    if first & 0x0F == 0x1 { handleText(payload.readableBytesView) }
                } else {
                    message.clear()
                    var copy = payload
                    message.writeBuffer(&copy)
                    if fin { finishMessage() }
                }
            case 0x0:
                var copy = payload
                message.writeBuffer(&copy)
                if fin { finishMessage() }
            case 0x8:
                state = .closed
                context?.close(promise: nil)
                delegate.connectionDidClose(self, error: "server closed the WebSocket")
            case 0x9:
                writeFrame(opcode: 0xA, payload: payload.readableBytesView)
            default: break
            }
        }
    }

    /// A message assembled in `message`: inflated first when compressed (RFC 7692 §7.2.2: the
    /// payload plus 00 00 FF FF is a raw DEFLATE stream flushed to a byte boundary).
    private func finishMessage() {
        guard compressed else { return handleText(message.readableBytesView) }
        compressed = false
        do {
            let inflater = try self.inflater ?? ZlibStream(inflateWindowBits: 15)
            self.inflater = inflater
            message.writeBytes([0x00, 0x00, 0xFF, 0xFF])
            var inflated = ByteBuffer()
            _ = try inflater.inflate(message.readableBytesView, into: &inflated, alreadyProduced: 0, limit: 64 << 20)
            handleText(inflated.readableBytesView)
        } catch {
            fail("a compressed message did not inflate: \(error)")
        }
    }

    private func handleText(_ text: ByteBufferView) {
        SocketIOWire.handleEngineIOPacket(
            text,
            connection: self,
            delegate: delegate,
            namespace: namespace,
            reply: { pong in
                var buffer = ByteBufferAllocator().buffer(capacity: 1)
                buffer.writeStaticString(pong)
                writeFrame(opcode: 0x1, payload: buffer.readableBytesView)
            },
            sendConnect: {
                sendSocketIO { buffer in
                    buffer.writeStaticString("0")
                    if namespace != "/" { buffer.writeString(namespace + ",") }
                }
            },
            fail: { fail($0) }
        )
    }

    /// Writes a masked frame whose payload `build` appends.
    func sendSocketIO(_ build: (inout ByteBuffer) -> Void) {
        guard state == .open else { return }
        // Reserve the longest header (2 + 8 + 4), write "4" + packet, then move the header in.
        let headerStart = outbound.writerIndex
        outbound.writeRepeatingByte(0, count: 14)
        let payloadStart = outbound.writerIndex
        outbound.writeInteger(UInt8(ascii: "4"))
        build(&outbound)
        let length = outbound.writerIndex - payloadStart
        finishFrame(opcode: 0x1, headerStart: headerStart, payloadStart: payloadStart, length: length)
    }

    private func writeFrame(opcode: UInt8, payload: ByteBufferView) {
        guard state == .open else { return }
        let headerStart = outbound.writerIndex
        outbound.writeRepeatingByte(0, count: 14)
        let payloadStart = outbound.writerIndex
        outbound.writeBytes(payload)
        finishFrame(opcode: opcode, headerStart: headerStart, payloadStart: payloadStart, length: payload.count)
    }

    private func finishFrame(opcode: UInt8, headerStart: Int, payloadStart: Int, length: Int) {
        let headerLength = length < 126 ? 6 : (length <= 0xFFFF ? 8 : 14)
        let gap = 14 - headerLength
        let readerBase = outbound.readerIndex
        let key = maskKey
        outbound.withUnsafeMutableReadableBytes { raw in
            // Mask the payload while moving it left to follow the real header.
            let from = payloadStart - readerBase
            let to = from - gap
            withUnsafeBytes(of: key.bigEndian) { keyBytes in
                for i in 0..<length { raw[to + i] = raw[from + i] ^ keyBytes[i & 3] }
            }
        }
        outbound.moveWriterIndex(to: outbound.writerIndex - gap)
        var at = headerStart
        outbound.setInteger(0x80 | opcode, at: at)
        at += 1
        if length < 126 {
            outbound.setInteger(0x80 | UInt8(length), at: at)
            at += 1
        } else if length <= 0xFFFF {
            outbound.setInteger(UInt8(0x80 | 126), at: at)
            outbound.setInteger(UInt16(length), at: at + 1)
            at += 3
        } else {
            outbound.setInteger(UInt8(0x80 | 127), at: at)
            outbound.setInteger(UInt64(length), at: at + 1)
            at += 9
        }
        outbound.setInteger(key, at: at)
        pendingWrites = true
    }

    func flush() {
        guard pendingWrites, let context, state != .closed else { return }
        pendingWrites = false
        let chunk = outbound
        outbound = context.channel.allocator.buffer(capacity: max(256, chunk.readableBytes))
        context.writeAndFlush(wrapOutboundOut(chunk), promise: nil)
    }

    /// How long a closing connection waits for the server to close the TCP connection.
    static let closeTimeout = TimeAmount.seconds(2)

    /// Closes like browsers and the official clients do (RFC 6455 §7.1.1): a close frame, then the
    /// server answers and closes the TCP connection first. Closing our end at once would make the
    /// server's answer meet a closed socket (a reset) — work a real client does not cause.
    func close() {
        guard state != .closed, state != .closing, let context else { return }
        guard state == .open else {
            state = .closed
            context.close(promise: nil)
            return
        }
        var code = ByteBufferAllocator().buffer(capacity: 2)
        code.writeInteger(UInt16(1000))
        writeFrame(opcode: 0x8, payload: code.readableBytesView)
        flush()
        state = .closing
        let channel = context.channel
        closeTimer = context.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) }
    }

    private func fail(_ reason: String) {
        guard state != .closed else { return }
        let wasClosing = state == .closing
        state = .closed
        context?.close(promise: nil)
        if !wasClosing { delegate.connectionDidClose(self, error: reason) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        closeTimer = nil
        if state == .closing {
            state = .closed
        } else if state != .closed {
            state = .closed
            delegate.connectionDidClose(self, error: "connection closed by the server")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail("\(error)")
    }
}
