import NIOCore
import RESPCore

/// What travels down a Redis channel: a command and where its reply goes.
struct RedisRequest {
    var arguments: [ByteBuffer]
    /// `nil` for commands whose replies are not matched one to one (subscriptions).
    var promise: EventLoopPromise<RESPValue>?
    var deadline: NIODeadline
}

/// Reads replies and out-of-band data from one Redis connection: a reply completes the oldest
/// waiting command (Redis answers in order), and pub/sub traffic (RESP2 `message`/`pmessage`/
/// `smessage` arrays on a subscribed connection, RESP3 pushes) goes to ``onPush``. Confined to
/// its channel's event loop.
final class RedisHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var decoder = RESPDecoder()
    private var waiting = CircularBuffer<(promise: EventLoopPromise<RESPValue>, deadline: NIODeadline)>()
    /// Whether every non-push reply is pub/sub traffic (a RESP2 connection in subscribed mode).
    private let subscriber: Bool
    /// Gets pub/sub messages and subscription confirmations.
    let onPush: ([RESPValue]) -> Void
    let maxPending: Int

    init(subscriber: Bool, maxPending: Int, onPush: @escaping ([RESPValue]) -> Void) {
        self.subscriber = subscriber
        self.maxPending = maxPending
        self.onPush = onPush
    }

    /// The deadline of the oldest command still waiting.
    var oldestDeadline: NIODeadline? { self.waiting.first?.deadline }

    var pendingCount: Int { self.waiting.count }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = Self.unwrapOutboundIn(data)
        guard context.channel.isActive else {
            // The connection is going: its replies will never come.
            request.promise?.fail(RedisError.notConnected)
            promise?.fail(RedisError.notConnected)
            return
        }
        if let reply = request.promise {
            guard self.waiting.count < self.maxPending else {
                reply.fail(RedisError.tooManyPendingCommands)
                promise?.fail(RedisError.tooManyPendingCommands)
                return
            }
            self.waiting.append((reply, request.deadline))
        }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPEncoder.command(request.arguments, into: &buffer)
        context.write(Self.wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.decoder.append(Self.unwrapInboundIn(data))
        do {
            while let value = try self.decoder.next() { self.received(value) }
        } catch {
            self.failAll(RedisError.protocolError("\(error)"))
            context.close(promise: nil)
        }
    }

    private func received(_ value: RESPValue) {
        if case .push(let items) = value {
            self.onPush(items)
            return
        }
        if self.subscriber, case .array(let items) = value, let kind = items.first?.string?.lowercased(),
            Self.pubSubKinds.contains(kind)
        {
            self.onPush(items)
            return
        }
        guard let (promise, _) = self.waiting.popFirst() else { return }
        if let message = value.errorMessage {
            promise.fail(RedisError.server(message))
        } else {
            promise.succeed(value)
        }
    }

    /// The first element of pub/sub traffic on a RESP2 subscribed connection.
    static let pubSubKinds: Set<String> = [
        "message", "pmessage", "smessage", "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
        "sunsubscribe",
    ]

    func channelInactive(context: ChannelHandlerContext) {
        self.failAll(RedisError.notConnected)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.failAll(RedisError.notConnected)
        context.close(promise: nil)
    }

    /// Fails every waiting command.
    func failAll(_ error: RedisError) {
        while let (promise, _) = self.waiting.popFirst() { promise.fail(error) }
    }
}

@available(*, unavailable)
extension RedisHandler: Sendable {}
