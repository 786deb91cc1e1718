import EngineIO
import EngineIOCore
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

/// The WebSocket write path (queue, flush scheduler, framing by the raw writer) checked byte
/// for byte: whatever it writes must decode, with NIO's own frame decoder, into exactly the frames
/// that were sent, in order, at every header-length boundary, alone or batched, shared or not.
@Suite struct WebSocketWritePathTests {
    /// One connection on an embedded channel with the production pipeline below the handler.
    private func makeConnection(
        loop: EmbeddedEventLoop,
        scheduler: WebSocketFlushScheduler? = nil
    ) throws -> (EmbeddedChannel, WebSocketConnection) {
        let channel = EmbeddedChannel(loop: loop)
        try WebSocketRawWriter.install(in: channel)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let raw = try channel.pipeline.syncOperations.handler(type: WebSocketRawWriter.self)
        return (channel, WebSocketConnection(channel: channel, raw: raw, scheduler: scheduler))
    }

    /// Everything the channel wrote, decoded as server frames.
    private func decodeFrames(_ channel: EmbeddedChannel) throws -> [WebSocketFrame] {
        var bytes = ByteBuffer()
        while var chunk = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&chunk) }
        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        try decoder.writeInbound(bytes)
        var frames: [WebSocketFrame] = []
        while let frame = try decoder.readInbound(as: WebSocketFrame.self) { frames.append(frame) }
        _ = try decoder.finish()
        return frames
    }

    private static let sizes = [0, 1, 125, 126, 127, 511, 512, 513, 65_535, 65_536, 70_000]

    private static func payload(_ size: Int, seed: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(size + 10)
        buffer.moveWriterIndex(forwardBy: 10)
        buffer.moveReaderIndex(forwardBy: 10)  // headroom, as encoded packets have
        buffer.writeString("4")
        for i in 0..<max(0, size - 1) { buffer.writeInteger(UInt8(ascii: "a") + UInt8((i + seed) % 26)) }
        return buffer
    }

    @Test("each size alone, with headroom and unshared", arguments: sizes)
    func lone(size: Int) throws {
        let loop = EmbeddedEventLoop()
        let (channel, connection) = try self.makeConnection(loop: loop)
        let data = size == 0 ? ByteBuffer() : Self.payload(size, seed: size)
        #expect(connection.send(.encodedMessage(data)))
        loop.run()
        let frames = try self.decodeFrames(channel)
        #expect(frames.count == 1)
        #expect(frames.first?.opcode == .text)
        #expect(frames.first?.fin == true)
        #expect(frames.first?.data == data)
        #expect(connection.isIdle)
        _ = try channel.finish()
    }

    @Test("every size in one batch, shared with other receivers, binary among text")
    func batchedAndShared() throws {
        let loop = EmbeddedEventLoop()
        let scheduler = WebSocketFlushScheduler(eventLoop: loop)
        let (first, one) = try self.makeConnection(loop: loop, scheduler: scheduler)
        let (second, two) = try self.makeConnection(loop: loop, scheduler: scheduler)
        var sent: [(WebSocketOpcode, ByteBuffer)] = []
        for (index, size) in Self.sizes.enumerated() {
            let data = size == 0 ? ByteBuffer() : Self.payload(size, seed: index)
            if index % 3 == 2 {
                #expect(one.send(.binaryMessage(data)))
                #expect(two.send(.binaryMessage(data)))
                sent.append((.binary, data))
            } else {
                #expect(one.send(.encodedMessage(data)))  // the same buffer for both receivers
                #expect(two.send(.encodedMessage(data)))
                sent.append((.text, data))
            }
        }
        loop.run()
        for channel in [first, second] {
            let frames = try self.decodeFrames(channel)
            #expect(frames.count == sent.count)
            for (frame, expected) in zip(frames, sent) {
                #expect(frame.opcode == expected.0)
                #expect(frame.data == expected.1)
            }
        }
        #expect(one.isIdle && two.isIdle)
        _ = try first.finish()
        _ = try second.finish()
    }

    @Test("the frame limits refuse what would exceed them, and count frames until written")
    func limits() throws {
        let loop = EmbeddedEventLoop()
        let (channel, connection) = try self.makeConnection(loop: loop)
        let limits = (packets: 3, bytes: 1_000)
        #expect(connection.send(.message("a"), limits: limits))
        #expect(connection.send(.message("b"), limits: limits))
        #expect(connection.send(.message("c"), limits: limits))
        #expect(!connection.send(.message("d"), limits: limits))  // a fourth before any write
        #expect(!connection.isIdle)
        loop.run()
        #expect(connection.isIdle)
        #expect(connection.send(.message(String(repeating: "x", count: 900)), limits: limits))
        #expect(!connection.send(.message(String(repeating: "y", count: 200)), limits: limits))  // bytes
        loop.run()
        let texts = try self.decodeFrames(channel).map { String(buffer: $0.data) }
        #expect(texts == ["4a", "4b", "4c", "4" + String(repeating: "x", count: 900)])
        _ = try channel.finish()
    }

    @Test("frames from the handlers above are encoded exactly, flags and all", arguments: sizes)
    func framesFromAbove(size: Int) throws {
        let loop = EmbeddedEventLoop()
        let (channel, _) = try self.makeConnection(loop: loop)
        let data = Self.payload(size, seed: size + 1)
        let sent = [
            WebSocketFrame(fin: true, opcode: .binary, data: data),
            WebSocketFrame(fin: true, rsv1: true, opcode: .text, data: data),  // as deflate writes
            WebSocketFrame(fin: false, opcode: .text, data: data),
            WebSocketFrame(fin: true, opcode: .continuation, data: data),
            WebSocketFrame(fin: true, opcode: .pong, data: Self.payload(min(size, 125), seed: 3)),
        ]
        for frame in sent { try channel.writeOutbound(frame) }
        // An unmasked close frame with its code, and a masked frame (never sent by a server, but
        // encoded as RFC 6455 says).
        var code = ByteBuffer()
        code.write(webSocketErrorCode: .goingAway)
        try channel.writeOutbound(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))
        let key = WebSocketMaskingKey([1, 2, 3, 4])!
        try channel.writeOutbound(WebSocketFrame(fin: true, opcode: .binary, maskKey: key, data: data))
        let frames = try self.decodeFrames(channel)
        #expect(frames.count == sent.count + 2)
        for (frame, expected) in zip(frames, sent) {
            #expect(frame.fin == expected.fin)
            #expect(frame.rsv1 == expected.rsv1)
            #expect(frame.opcode == expected.opcode)
            #expect(frame.data == expected.data)
            #expect(frame.maskKey == nil)
        }
        #expect(frames.dropFirst(sent.count).first?.opcode == .connectionClose)
        #expect(frames.dropFirst(sent.count).first?.data == code)
        #expect(frames.last?.maskKey == key)
        #expect(frames.last?.unmaskedData == data)
        _ = try channel.finish()
    }
}
