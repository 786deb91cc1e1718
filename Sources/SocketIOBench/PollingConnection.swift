import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A benchmark client over HTTP long-polling (`transport=polling`): one keep-alive connection
/// always holds a GET, a second one POSTs whatever was queued, one request at a time, the way the
/// official client batches. ``upgrade(then:)`` moves it to WebSocket the way the official client
/// does by default (the connect scenario's `--upgrade`).
final class PollingBenchConnection: BenchConnection {
    private enum State {
        case handshaking
        case open
        /// A WebSocket with the session's id is being probed; polling stops.
        case upgrading
        /// The session now runs over `webSocket`.
        case upgraded
        case closed
    }

    enum Role {
        case get
        case post
    }

    let index: Int
    private let host: String
    private let path: String
    private let namespace: String
    private let delegate: any BenchConnectionDelegate
    private let makeBootstrap: () -> ClientBootstrap
    private let address: SocketAddress
    private var state = State.handshaking
    private var sid = ""
    private var getChannel: (any Channel)?
    private var postChannel: (any Channel)?
    private var queue = ByteBuffer()
    private var postInFlight = false
    private var webSocket: (any Channel)?

    init(
        index: Int,
        host: String,
        path: String,
        namespace: String,
        address: SocketAddress,
        delegate: any BenchConnectionDelegate,
        makeBootstrap: @escaping () -> ClientBootstrap
    ) {
        self.index = index
        self.host = host
        self.path = path
        self.namespace = namespace
        self.address = address
        self.delegate = delegate
        self.makeBootstrap = makeBootstrap
    }

    /// Connects the GET connection and sends the handshake.
    func start(on loop: any EventLoop) {
        connect(role: .get, loop: loop) { [self] channel in
            getChannel = channel
            send(on: channel, method: .GET, query: "", body: nil)
        }
    }

    private func connect(role: Role, loop: any EventLoop, then: @escaping (any Channel) -> Void) {
        let handler = NIOLoopBound(HTTPExchangeHandler(owner: self, role: role), eventLoop: loop)
        let owner = NIOLoopBound(self, eventLoop: loop)
        let next = NIOLoopBound(then, eventLoop: loop)
        makeBootstrap()
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler.value)
                }
            }
            .connect(to: address)
            .whenComplete { result in
                switch result {
                case .success(let channel): next.value(channel)
                case .failure(let error): owner.value.fail("connect failed: \(error)")
                }
            }
    }

    private func send(on channel: any Channel, method: HTTPMethod, query: String, body: ByteBuffer?) {
        let separator = path.contains("?") ? "&" : "?"
        var uri = "\(path)\(separator)EIO=4&transport=polling"
        if !sid.isEmpty { uri += "&sid=\(sid)" }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri + query)
        head.headers.add(name: "Host", value: host)
        if let body {
            head.headers.add(name: "Content-Type", value: "text/plain;charset=UTF-8")
            head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// A complete response arrived on the connection playing `role`.
    func didReceive(role: Role, status: HTTPResponseStatus, body: ByteBuffer) {
        guard state != .closed else { return }
        guard status == .ok else {
            return fail("HTTP \(status.code) on \(role == .get ? "GET" : "POST"): \(String(buffer: body).prefix(120))")
        }
        switch role {
        case .post:
            postInFlight = false
            flush()
        case .get where state == .upgrading || state == .upgraded:
            // The GET that was pending when the upgrade began, answered with a noop: polling
            // ends here.
            break
        case .get:
            if state == .handshaking {
                guard let found = Self.sid(in: body) else { return fail("no sid in the handshake") }
                sid = found
                state = .open
                handlePayload(body)
                guard let loop = getChannel?.eventLoop else { return }
                connect(role: .post, loop: loop) { [self] channel in
                    postChannel = channel
                    flush()
                }
            } else {
                handlePayload(body)
            }
            if state == .open, let getChannel { send(on: getChannel, method: .GET, query: "", body: nil) }
        }
    }

    private func handlePayload(_ body: ByteBuffer) {
        let view = body.readableBytesView
        var start = view.startIndex
        while start < view.endIndex, state != .closed {
            let end = view[start...].firstIndex(of: 0x1E) ?? view.endIndex
            SocketIOWire.handleEngineIOPacket(
                ByteBufferView(view[start..<end]),
                connection: self,
                delegate: delegate,
                namespace: namespace,
                reply: { pong in enqueue { $0.writeStaticString(pong) } },
                sendConnect: {
                    sendSocketIO { buffer in
                        buffer.writeStaticString("0")
                        if namespace != "/" { buffer.writeString(namespace + ",") }
                    }
                },
                fail: { fail($0) }
            )
            start = end < view.endIndex ? view.index(after: end) : end
        }
        flush()
    }

    /// Finds the `sid` string in the handshake's open packet.
    static func sid(in body: ByteBuffer) -> String? {
        let text = String(buffer: body)
        guard let key = text.range(of: "\"sid\"") else { return nil }
        guard let open = text[key.upperBound...].firstIndex(of: "\"") else { return nil }
        let rest = text[text.index(after: open)...]
        guard let close = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<close])
    }

    private func enqueue(_ build: (inout ByteBuffer) -> Void) {
        if queue.readableBytes > 0 { queue.writeInteger(UInt8(0x1E)) }
        build(&queue)
    }

    func sendSocketIO(_ build: (inout ByteBuffer) -> Void) {
        guard state != .closed else { return }
        enqueue { buffer in
            buffer.writeInteger(UInt8(ascii: "4"))
            build(&buffer)
        }
    }

    func flush() {
        guard state == .open, !postInFlight, queue.readableBytes > 0, let postChannel else { return }
        postInFlight = true
        let body = queue
        queue = postChannel.allocator.buffer(capacity: 256)
        send(on: postChannel, method: .POST, query: "", body: body)
    }

    /// Upgrades the session the way the official client does (Engine.IO v4): a WebSocket
    /// carrying the session id, `2probe` answered by `3probe`, then `5`; the GET pending on the
    /// polling side is answered with a noop. Calls `done` once `5` is sent.
    /// With `deflate`, the WebSocket handshake offers permessage-deflate, as browsers do.
    func upgrade(deflate: Bool, then done: @escaping () -> Void) {
        guard state == .open, let loop = getChannel?.eventLoop else { return }
        state = .upgrading
        let separator = path.contains("?") ? "&" : "?"
        let request =
            "GET \(path)\(separator)EIO=4&transport=websocket&sid=\(sid) HTTP/1.1\r\nHost: \(host)\r\n"
            + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            + "Sec-WebSocket-Version: 13\r\n"
            + (deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "")
            + "\r\n"
        let handler = NIOLoopBound(
            UpgradeProbeHandler(owner: self, request: request, deflate: deflate, done: done),
            eventLoop: loop
        )
        let owner = NIOLoopBound(self, eventLoop: loop)
        makeBootstrap()
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
            }
            .connect(to: address)
            .whenComplete { result in
                switch result {
                case .success(let channel): owner.value.webSocket = channel
                case .failure(let error): owner.value.fail("upgrade connect failed: \(error)")
                }
            }
    }

    /// The probe answered and `5` sent: the session is on the WebSocket now.
    func upgraded() {
        guard state == .upgrading else { return }
        state = .upgraded
    }

    func close() {
        guard state != .closed else { return }
        if state == .upgraded || state == .upgrading {
            state = .closed
            // A client close frame (code 1000, masked with a zero key): the server answers and
            // closes the TCP connection.
            if let webSocket {
                var frame = webSocket.allocator.buffer(capacity: 8)
                frame.writeBytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8])
                webSocket.writeAndFlush(frame, promise: nil)
            }
            getChannel?.close(promise: nil)
            postChannel?.close(promise: nil)
            return
        }
        if state == .open, let postChannel {
            var body = postChannel.allocator.buffer(capacity: 1)
            body.writeStaticString("1")
            send(on: postChannel, method: .POST, query: "", body: body)
        }
        state = .closed
        getChannel?.close(promise: nil)
        postChannel?.close(mode: .output, promise: nil)
    }

    func fail(_ reason: String) {
        guard state != .closed else { return }
        state = .closed
        getChannel?.close(promise: nil)
        postChannel?.close(promise: nil)
        webSocket?.close(promise: nil)
        delegate.connectionDidClose(self, error: reason)
    }

    func channelClosed(role: Role) {
        // Once upgraded, the server may close the polling connections.
        if state == .upgraded || state == .upgrading { return }
        if state != .closed { fail("the server closed the \(role == .get ? "GET" : "POST") connection") }
    }
}

/// The WebSocket side of an upgrade: sends the handshake, then the probe, and waits for its
/// answer before sending the upgrade packet.
final class UpgradeProbeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let owner: PollingBenchConnection
    private let request: String
    private let deflate: Bool
    private let done: () -> Void
    private var inbound = ByteBuffer()
    private var switched = false
    private var finished = false

    init(owner: PollingBenchConnection, request: String, deflate: Bool, done: @escaping () -> Void) {
        self.owner = owner
        self.request = request
        self.deflate = deflate
        self.done = done
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        inbound.writeBuffer(&buffer)
        if !switched {
            guard let end = inbound.readableBytesView.firstRange(of: [13, 10, 13, 10]) else { return }
            let head = inbound.readString(length: end.upperBound - inbound.readerIndex) ?? ""
            guard head.hasPrefix("HTTP/1.1 101") else {
                return owner.fail("upgrade refused: \(head.prefix(while: { $0 != "\r" }))")
            }
            if deflate, !head.lowercased().contains("\r\nsec-websocket-extensions: permessage-deflate") {
                return owner.fail("the server declined permessage-deflate")
            }
            switched = true
            send(context: context, text: "2probe")
        }
        // Unmasked server frames; only short text frames are expected before the probe answer.
        while !finished, inbound.readableBytes >= 2 {
            let view = inbound.readableBytesView
            let length = Int(view[view.startIndex + 1] & 0x7F)
            guard length < 126 else { return owner.fail("unexpected long frame during the upgrade") }
            guard view.count >= 2 + length else { return }
            inbound.moveReaderIndex(forwardBy: 2)
            let payload = inbound.readString(length: length) ?? ""
            if payload == "3probe" {
                finished = true
                send(context: context, text: "5")
                owner.upgraded()
                done()
            }
        }
    }

    private func send(context: ChannelHandlerContext, text: String) {
        var frame = context.channel.allocator.buffer(capacity: text.utf8.count + 6)
        // FIN + text, masked with a zero key (the payload stays as it is).
        frame.writeBytes([0x81, 0x80 | UInt8(text.utf8.count), 0, 0, 0, 0])
        frame.writeString(text)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished { owner.fail("the server closed the WebSocket during the upgrade") }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        owner.fail("\(error)")
        context.close(promise: nil)
    }
}

/// Collects one HTTP response at a time and hands it to its polling connection.
final class HTTPExchangeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let owner: PollingBenchConnection
    private let role: PollingBenchConnection.Role
    private var status = HTTPResponseStatus.ok
    private var body = ByteBuffer()

    init(owner: PollingBenchConnection, role: PollingBenchConnection.Role) {
        self.owner = owner
        self.role = role
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            body.clear()
        case .body(var part):
            if body.readableBytes == 0 { body = part } else { body.writeBuffer(&part) }
        case .end:
            let complete = body
            body = ByteBuffer()
            owner.didReceive(role: role, status: status, body: complete)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        owner.channelClosed(role: role)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        owner.fail("\(error)")
        context.close(promise: nil)
    }
}
