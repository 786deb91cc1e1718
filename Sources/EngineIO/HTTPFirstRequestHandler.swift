import Logging
package import NIOCore
package import NIOHTTP1

/// A strict reader for the request heads the fast paths handle: `GET`, `POST` or `OPTIONS`
/// `<target> HTTP/1.1` with ordinary header lines, complete in the bytes at hand; a `POST` may
/// announce a body with one plain `Content-Length` or with `Transfer-Encoding: chunked` (read by
/// ``HTTPChunkedDecoder``, which bounds chunk sizes and extensions as Node does).
///
/// It accepts a subset of what NIO's HTTP parser accepts, and produces the same
/// `HTTPRequestHead` for it (the tests compare the two); anything else, including everything
/// merely unusual (other methods or versions, folded or malformed lines, other transfer codings,
/// a body on another method, a head over ``maxLength``), is left to NIO's parser.
package enum HTTPFastHead {
    /// The outcome of reading the bytes at the start of a request.
    package enum Outcome {
        /// The bytes so far could start a head this reader handles: wait for more.
        case needMore
        /// Not for this reader: hand the bytes to NIO's HTTP parser.
        case notHandled
        /// A complete head, `length` bytes long (what follows it is not part of it), announcing
        /// `body`. `special` when it has an `Upgrade` or `Expect` header, which only the NIO
        /// pipeline's handling covers (apart from the first request's WebSocket handshake).
        case head(HTTPRequestHead, length: Int, body: Body, special: Bool)
    }

    /// How a head says its body is framed.
    package enum Body: Equatable, Sendable {
        /// This many bytes (0: no body).
        case length(Int)
        /// The chunked transfer coding.
        case chunked
    }

    /// The methods read here, with the space after them.
    private static let methods: [(HTTPMethod, StaticString)] = [
        (.GET, "GET "), (.POST, "POST "), (.OPTIONS, "OPTIONS "),
    ]

    /// The longest `Content-Length` value read here, in digits (any such length fits an `Int`;
    /// one above the server's limits is refused with 413 from the head alone).
    private static let maxLengthDigits = 18

    /// The longest head read here (a browser's handshake is well under 2 KiB; NIO's parser takes
    /// longer ones, up to its own limit).
    package static let maxLength = 8192

    /// Reads `buffer`'s readable bytes.
    ///
    /// - Parameter limit: the longest head read here (at most ``maxLength``): a longer one is
    ///   left to NIO's parser, which refuses heads over the server's limit.
    package static func read(_ buffer: ByteBuffer, limit: Int = Self.maxLength) -> Outcome {
        buffer.withUnsafeReadableBytes { Self.read($0, limit: limit) }
    }

    /// Reads `bytes` from the start of a request.
    package static func read(_ bytes: UnsafeRawBufferPointer, limit: Int = Self.maxLength) -> Outcome {
        let count = bytes.count
        guard count > 0 else { return .needMore }
        // The methods start with different letters: the first byte picks the only candidate.
        guard let (method, token) = Self.methods.first(where: { $0.1.utf8Start.pointee == bytes[0] }) else {
            return .notHandled
        }
        let tokenLength = token.utf8CodeUnitCount
        let matches = token.withUTF8Buffer { token in
            zip(0..<min(count, tokenLength), token).allSatisfy { bytes[$0] == $1 }
        }
        guard matches else { return .notHandled }
        let limit = min(limit, Self.maxLength)
        guard let blank = Self.blankLine(in: bytes, within: limit) else {
            return count >= limit ? .notHandled : .needMore
        }
        // The request line: the method, one space, the target, one space, "HTTP/1.1", CRLF.
        var index = tokenLength
        let targetStart = index
        while Self.isTargetByte(bytes[index]) { index += 1 }
        guard index > targetStart, bytes[index] == 0x20 else { return .notHandled }
        let targetEnd = index
        index += 1
        for byte in "HTTP/1.1\r\n".utf8 {
            guard bytes[index] == byte else { return .notHandled }
            index += 1
        }
        // Header lines up to the blank line; every scan below stops at the CR at `blank` at the
        // latest, so no index passes it.
        var headers: [(String, String)] = []
        headers.reserveCapacity(12)
        var bodyLength: Int? = nil
        var chunked = false
        var special = false
        while index < blank + 2 {
            let nameStart = index
            while Self.isTokenByte(bytes[index]) { index += 1 }
            guard index > nameStart, bytes[index] == UInt8(ascii: ":") else { return .notHandled }
            let name = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<index])
            let kind = Self.kind(of: name)
            special = special || kind == .special
            index += 1
            while bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            // The value as NIO's parser gives it: leading whitespace dropped, trailing kept.
            let valueStart = index
            while bytes[index] != 0x0D {
                let byte = bytes[index]
                guard Self.isFieldValueByte(byte) else { return .notHandled }
                index += 1
            }
            let valueEnd = index
            guard bytes[index + 1] == 0x0A else { return .notHandled }
            index += 2
            if kind == .contentLength {
                // One plain decimal length, on a POST only; anything else is NIO's parser's.
                guard method == .POST, bodyLength == nil, valueEnd > valueStart,
                    valueEnd - valueStart <= Self.maxLengthDigits
                else { return .notHandled }
                var length = 0
                for byte in UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd]) {
                    guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return .notHandled }
                    length = length * 10 + Int(byte - UInt8(ascii: "0"))
                }
                bodyLength = length
            } else if kind == .transferEncoding {
                // Exactly `chunked`, once, on a POST; any other coding is NIO's parser's.
                let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd])
                guard method == .POST, !chunked, HTTPRequestHandler.equalsIgnoringASCIICase(value, "chunked") else {
                    return .notHandled
                }
                chunked = true
            }
            headers.append(
                (
                    String(decoding: name, as: UTF8.self),
                    String(decoding: UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd]), as: UTF8.self)
                )
            )
        }
        let target = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[targetStart..<targetEnd]), as: UTF8.self)
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: HTTPHeaders(headers))
        if chunked {
            // Both framings at once is a smuggling attempt or a broken client: NIO's parser decides.
            guard bodyLength == nil else { return .notHandled }
            return .head(head, length: blank + 4, body: .chunked, special: special)
        }
        return .head(head, length: blank + 4, body: .length(bodyLength ?? 0), special: special)
    }

    /// The index of the first CR LF CR LF within `limit` bytes.
    private static func blankLine(in bytes: UnsafeRawBufferPointer, within limit: Int) -> Int? {
        let end = min(bytes.count, limit)
        guard end >= 4 else { return nil }
        var index = 0
        while index <= end - 4 {
            // Step by the last byte of the pattern: an LF at index + 3 or not.
            let fourth = bytes[index + 3]
            if fourth == 0x0A {
                if bytes[index] == 0x0D, bytes[index + 1] == 0x0A, bytes[index + 2] == 0x0D { return index }
                index += 2
            } else if fourth == 0x0D {
                index += 1
            } else {
                index += 4
            }
        }
        return nil
    }

    /// RFC 3986 characters (unreserved, reserved, `%`): what a client puts in a request target.
    private static func isTargetByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"),
            UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: "["), UInt8(ascii: "]"),
            UInt8(ascii: "@"), UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","),
            UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: "%"):
            return true
        default:
            return false
        }
    }

    /// A byte a header value may hold: no control character but tab (NIO's rule, for reading and
    /// for sending).
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }

    /// RFC 7230 `tchar` (what a header name is made of).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// The header names this reader looks at.
    private enum HeaderKind {
        case contentLength
        case transferEncoding
        /// `Upgrade` or `Expect`.
        case special
        case other
    }

    /// Which of the names this reader looks at `name` is, in any case.
    private static func kind(of name: UnsafeRawBufferPointer) -> HeaderKind {
        switch name.count {
        case 14 where HTTPRequestHandler.equalsIgnoringASCIICase(name, "content-length"): return .contentLength
        case 17 where HTTPRequestHandler.equalsIgnoringASCIICase(name, "transfer-encoding"): return .transferEncoding
        case 7 where HTTPRequestHandler.equalsIgnoringASCIICase(name, "upgrade"): return .special
        case 6 where HTTPRequestHandler.equalsIgnoringASCIICase(name, "expect"): return .special
        default: return .other
        }
    }
}

/// The first handler of every plain connection: serves a WebSocket opening handshake that arrives
/// whole and well-formed without NIO's HTTP codec (the common case for Socket.IO clients, and
/// most of the cost of a new connection), and hands everything else, bytes unchanged, to
/// ``HTTPRequestHandler`` behind ``HTTPSimpleCodec`` (long-polling requests) or NIO's HTTP/1.1
/// pipeline (anything unusual), then leaves.
///
/// Routing, the endpoint's decision and the 101 are the ones ``HTTPRequestHandler`` uses; a
/// refused handshake is handed over with its decision, so that the HTTP pipeline answers it
/// (and `allowRequest` is asked once). Bytes after the head (frames a client sends before the
/// 101) reach the WebSocket handler.
final class HTTPFirstRequestHandler: ChannelDuplexHandler, RemovableChannelHandler, LoopTimerTarget {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer

    private enum State {
        /// Reading the head; `buffered` holds what arrived so far.
        case reading
        /// The endpoint is deciding on a handshake whose head is `head`; `buffered` holds what
        /// came after it.
        case deciding(head: ByteBuffer)
        /// Handed over, upgraded, or closed.
        case done
    }

    private let endpoints: [EngineIOServer]
    private let settings: HTTPServer.Settings
    private let upgrader: HTTPRequestHandler.WebSocketUpgrader
    private let acceptsWebSocket: @Sendable (Substring) -> Bool
    private var state = State.reading
    private var buffered: ByteBuffer?
    private var deadline: NIODeadline?
    private let timer = LoopTimer()
    private var context: ChannelHandlerContext?
    /// A read the channel asked for while the endpoint decides: held back, so that a client
    /// cannot make the server buffer without bound meanwhile, and passed on once decided.
    private var heldRead = false

    init(
        endpoints: [EngineIOServer],
        settings: HTTPServer.Settings,
        upgrader: HTTPRequestHandler.WebSocketUpgrader,
        acceptsWebSocket: @escaping @Sendable (Substring) -> Bool
    ) {
        self.endpoints = endpoints
        self.settings = settings
        self.upgrader = upgrader
        self.acceptsWebSocket = acceptsWebSocket
    }

    // MARK: Lifecycle and the header timeout

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.armTimer(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.armTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer.cancel()
        self.state = .done
        self.buffered = nil
        context.fireChannelInactive()
    }

    /// The client has `requestHeaderTimeout` from connecting to finish its first head (the
    /// same clock ``HTTPRequestHandler`` keeps for the requests after it).
    private func armTimer(context: ChannelHandlerContext) {
        guard self.deadline == nil else { return }
        let deadline = NIODeadline.now() + self.settings.requestHeaderTimeout
        self.deadline = deadline
        self.timer.arm(at: deadline, on: context.eventLoop, target: self)
    }

    func loopTimerFired(_ timer: LoopTimer) {
        guard case .reading = self.state, let context = self.context else { return }
        self.state = .done
        context.close(promise: nil)
    }

    // MARK: Reading

    func read(context: ChannelHandlerContext) {
        if case .deciding = self.state {
            self.heldRead = true
        } else {
            context.read()
        }
    }

    /// Lets a held-back read through.
    private func releaseRead(context: ChannelHandlerContext) {
        guard self.heldRead else { return }
        self.heldRead = false
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = Self.unwrapInboundIn(data)
        switch self.state {
        case .done:
            context.fireChannelRead(data)
            return
        case .deciding:
            self.buffered.setOrWriteBuffer(&bytes)
            return
        case .reading:
            break
        }
        if var earlier = self.buffered {
            self.buffered = nil
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        switch HTTPFastHead.read(bytes, limit: self.settings.limits.maxHeadSize) {
        case .needMore:
            self.buffered = bytes
        case .notHandled:
            self.handOver(context: context, bytes: bytes, to: .nio)
        case .head(_, _, _, special: false):
            // Long-polling and other plain requests.
            self.handOver(context: context, bytes: bytes, to: .simple)
        case .head(let head, let length, _, special: true):
            let upgrade = HTTPRequestHandler.WebSocketRequest(head)
            guard head.method == .GET, upgrade.key != nil,
                case .answer(.upgrade(let key, let target, _)) = HTTPRequestHandler.plan(
                    head: head,
                    upgrade: upgrade,
                    endpoints: self.endpoints,
                    settings: self.settings,
                    acceptsWebSocket: self.acceptsWebSocket
                )
            else {
                self.handOver(context: context, bytes: bytes, to: .nio)
                return
            }
            let headBytes = bytes.readSlice(length: length)!
            self.state = .deciding(head: headBytes)
            self.buffered = bytes.readableBytes > 0 ? bytes : nil
            self.timer.cancel()
            self.upgrader.decide(context.channel, head, target).hop(to: context.eventLoop).assumeIsolated()
                .whenComplete { result in
                    guard let context = self.context, case .deciding(let headBytes) = self.state else { return }
                    if case .success(.accept(let accepted)) = result {
                        self.switchProtocols(context: context, key: key, target: target, accepted: accepted)
                    } else {
                        // Refused (or failed): the HTTP pipeline answers, with this decision.
                        var bytes = headBytes
                        if var rest = self.buffered { bytes.writeBuffer(&rest) }
                        self.buffered = nil
                        self.handOver(context: context, bytes: bytes, to: .nio, decision: result)
                    }
                }
        }
    }

    /// Installs the WebSocket handlers after this one (they send the 101 with their first
    /// frames), passes them what followed the head, and leaves.
    private func switchProtocols(
        context: ChannelHandlerContext,
        key: String,
        target: UpgradeTarget,
        accepted: AcceptedUpgrade
    ) {
        self.state = .done
        let response = HTTPRequestHandler.switchingProtocols(
            key: key,
            accepted: accepted,
            allocator: context.channel.allocator
        )
        do {
            try self.upgrader.install(context.channel, target, accepted, response)
        } catch {
            self.settings.logger.debug("WebSocket upgrade failed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        let rest = self.buffered
        self.buffered = nil
        if let rest { context.fireChannelRead(Self.wrapInboundOut(rest)) }
        self.releaseRead(context: context)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// The HTTP/1.1 codec a connection that is not upgraded at once continues with.
    private enum Codec {
        /// ``HTTPSimpleCodec`` (long-polling requests; it hands over to NIO's for anything else).
        case simple
        /// NIO's HTTP/1.1 codec with pipelining.
        case nio
    }

    /// Installs `codec` and ``HTTPRequestHandler`` after this handler, passes them `bytes`
    /// (everything read so far), and leaves.
    private func handOver(
        context: ChannelHandlerContext,
        bytes: ByteBuffer,
        to codec: Codec,
        decision: Result<UpgradeDecision, any Error>? = nil
    ) {
        self.state = .done
        self.timer.cancel()
        let pipeline = context.pipeline.syncOperations
        do {
            switch codec {
            case .simple:
                try pipeline.addHandler(HTTPSimpleCodec(limits: self.settings.limits))
            case .nio:
                try self.settings.limits.addNIOCodec(to: pipeline)
            }
            try pipeline.addHandler(
                HTTPRequestHandler(
                    endpoints: self.endpoints,
                    settings: self.settings,
                    upgrader: self.upgrader,
                    acceptsWebSocket: self.acceptsWebSocket,
                    firstHeaderDeadline: self.deadline,
                    presetDecision: decision
                )
            )
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(Self.wrapInboundOut(bytes))
        self.releaseRead(context: context)
        pipeline.removeHandler(context: context, promise: nil)
    }
}

@available(*, unavailable)
extension HTTPFirstRequestHandler: Sendable {}
