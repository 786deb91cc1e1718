public import Logging
import NIOConcurrencyHelpers
public import NIOCore
public import RESPCore

/// A Redis client for commands, on SwiftNIO: one pipelined connection (replies come in order,
/// so any number of commands may be in flight) that reconnects by itself.
///
/// Commands issued while the connection is being re-established fail at once with
/// ``RedisError/notConnected`` rather than waiting in a queue: a caller that must not lose them
/// retries; a cluster adapter drops (and counts) a broadcast that cannot reach other servers.
public final class RedisClient: Sendable {
    private let connection: RedisConnection

    /// The event loop the client's connection lives on.
    public var eventLoop: any EventLoop { self.connection.eventLoop }

    /// Creates a client and starts connecting.
    ///
    /// - Parameters:
    ///   - configuration: where the server is and how to talk to it.
    ///   - eventLoop: the loop the connection lives on.
    ///   - logger: where connection losses are reported.
    public init(configuration: RedisConfiguration, eventLoop: any EventLoop, logger: Logger = Logger(label: "redis")) {
        self.connection = RedisConnection(
            configuration: configuration,
            eventLoop: eventLoop,
            logger: logger,
            subscriber: false,
            onReady: {},
            onPush: { _ in }
        )
        self.connection.start()
    }

    /// Sends a command; completes with its reply (a server error fails it with
    /// ``RedisError/server(_:)``).
    public func send(_ arguments: [ByteBuffer]) -> EventLoopFuture<RESPValue> {
        self.connection.send(arguments)
    }

    /// Sends a command given as text.
    public func send(_ arguments: String...) async throws -> RESPValue {
        try await self.connection.send(arguments.map { ByteBuffer(string: $0) }).get()
    }

    /// `PUBLISH channel message`: completes with the number of clients that received it.
    public func publish(_ message: ByteBuffer, to channel: String) -> EventLoopFuture<Int> {
        self.send([ByteBuffer(staticString: "PUBLISH"), ByteBuffer(string: channel), message]).map {
            Int($0.integer ?? 0)
        }
    }

    /// `SPUBLISH channel message` (Redis 7 sharded pub/sub).
    public func spublish(_ message: ByteBuffer, to channel: String) -> EventLoopFuture<Int> {
        self.send([ByteBuffer(staticString: "SPUBLISH"), ByteBuffer(string: channel), message]).map {
            Int($0.integer ?? 0)
        }
    }

    /// Whether the connection is up now.
    public var isConnected: Bool {
        get async { (try? await self.connection.isReady.get()) ?? false }
    }

    /// Closes the connection for good; later commands fail with ``RedisError/closed``.
    public func close() async {
        try? await self.connection.close().get()
    }
}

/// A message received on a subscription.
public struct RedisPubSubMessage: Sendable {
    /// How it was subscribed to.
    public enum Kind: Sendable, Hashable {
        /// `SUBSCRIBE`.
        case channel
        /// `PSUBSCRIBE`: ``RedisPubSubMessage/pattern`` is the pattern that matched.
        case pattern
        /// `SSUBSCRIBE` (sharded).
        case sharded
    }

    /// How it was subscribed to.
    public var kind: Kind
    /// The pattern that matched, for ``Kind/pattern``.
    public var pattern: String?
    /// The channel it was published on.
    public var channel: String
    /// The message.
    public var payload: ByteBuffer
}

/// A Redis connection dedicated to subscriptions (`SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`): it
/// keeps the set of subscriptions asked for, subscribes again after every reconnection, and
/// hands each message to its handler (on the connection's event loop).
public final class RedisSubscriber: Sendable {
    private let connection: RedisConnection
    private let state: NIOLockedValueBox<State>

    private struct Subscription: Hashable {
        var kind: RedisPubSubMessage.Kind
        var name: String
    }

    private struct State {
        /// What is asked for (kept across reconnections).
        var wanted: Set<Subscription> = []
        /// Confirmations awaited, by subscription.
        var waiting: [Subscription: [EventLoopPromise<Void>]] = [:]
    }

    /// Creates a subscriber and starts connecting.
    ///
    /// - Parameters:
    ///   - onMessage: called for every message, on the connection's event loop.
    public init(
        configuration: RedisConfiguration,
        eventLoop: any EventLoop,
        logger: Logger = Logger(label: "redis"),
        onMessage: @escaping @Sendable (RedisPubSubMessage) -> Void
    ) {
        let state = NIOLockedValueBox(State())
        self.state = state
        let holder = NIOLockedValueBox<RedisConnection?>(nil)
        let connection = RedisConnection(
            configuration: configuration,
            eventLoop: eventLoop,
            logger: logger,
            subscriber: true,
            onReady: {
                // Subscribe again to everything asked for (after the first connection too).
                guard let connection = holder.withLockedValue({ $0 }) else { return }
                let wanted = state.withLockedValue { $0.wanted }
                for kind in [RedisPubSubMessage.Kind.channel, .pattern, .sharded] {
                    let names = wanted.filter { $0.kind == kind }.map(\.name).sorted()
                    if names.isEmpty { continue }
                    if kind == .sharded {
                        // One command per channel: sharded channels may live on different shards.
                        for name in names { _ = connection.sendUnmatched(Self.command(kind, [name])) }
                    } else {
                        _ = connection.sendUnmatched(Self.command(kind, names))
                    }
                }
            },
            onPush: { items in Self.received(items, state: state, onMessage: onMessage) }
        )
        holder.withLockedValue { $0 = connection }
        self.connection = connection
        connection.start()
    }

    private static func command(
        _ kind: RedisPubSubMessage.Kind,
        _ names: [String],
        subscribe: Bool = true
    ) -> [ByteBuffer] {
        let verb: String
        switch kind {
        case .channel: verb = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE"
        case .pattern: verb = subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE"
        case .sharded: verb = subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE"
        }
        return ([verb] + names).map { ByteBuffer(string: $0) }
    }

    private static func received(
        _ items: [RESPValue],
        state: NIOLockedValueBox<State>,
        onMessage: @Sendable (RedisPubSubMessage) -> Void
    ) {
        guard let kind = items.first?.string?.lowercased() else { return }
        switch kind {
        case "message", "smessage":
            guard items.count >= 3, let channel = items[1].string, let payload = items[2].bytes else { return }
            onMessage(
                RedisPubSubMessage(kind: kind == "message" ? .channel : .sharded, channel: channel, payload: payload)
            )
        case "pmessage":
            guard items.count >= 4, let pattern = items[1].string, let channel = items[2].string,
                let payload = items[3].bytes
            else { return }
            onMessage(RedisPubSubMessage(kind: .pattern, pattern: pattern, channel: channel, payload: payload))
        case "subscribe", "psubscribe", "ssubscribe":
            guard items.count >= 2, let name = items[1].string else { return }
            let subscription = Subscription(
                kind: kind == "subscribe" ? .channel : kind == "psubscribe" ? .pattern : .sharded,
                name: name
            )
            let promises = state.withLockedValue { $0.waiting.removeValue(forKey: subscription) ?? [] }
            for promise in promises { promise.succeed() }
        default:
            break
        }
    }

    /// `SUBSCRIBE`: completes once Redis confirmed every channel (kept and renewed after
    /// reconnections even when it fails now).
    public func subscribe(_ channels: [String]) -> EventLoopFuture<Void> { self.subscribe(.channel, channels) }

    /// `PSUBSCRIBE`.
    public func psubscribe(_ patterns: [String]) -> EventLoopFuture<Void> { self.subscribe(.pattern, patterns) }

    /// `SSUBSCRIBE` (Redis 7 sharded pub/sub; one command per channel).
    public func ssubscribe(_ channels: [String]) -> EventLoopFuture<Void> { self.subscribe(.sharded, channels) }

    /// `UNSUBSCRIBE` (one command per channel, as Node's adapter does).
    public func unsubscribe(_ channels: [String]) -> EventLoopFuture<Void> { self.unsubscribe(.channel, channels) }

    /// `PUNSUBSCRIBE`.
    public func punsubscribe(_ patterns: [String]) -> EventLoopFuture<Void> { self.unsubscribe(.pattern, patterns) }

    /// `SUNSUBSCRIBE`.
    public func sunsubscribe(_ channels: [String]) -> EventLoopFuture<Void> { self.unsubscribe(.sharded, channels) }

    private func subscribe(_ kind: RedisPubSubMessage.Kind, _ names: [String]) -> EventLoopFuture<Void> {
        let loop = self.connection.eventLoop
        guard !names.isEmpty else { return loop.makeSucceededVoidFuture() }
        let promises = names.map { _ in loop.makePromise(of: Void.self) }
        self.state.withLockedValue { state in
            for (name, promise) in zip(names, promises) {
                let subscription = Subscription(kind: kind, name: name)
                state.wanted.insert(subscription)
                state.waiting[subscription, default: []].append(promise)
            }
        }
        var sends: [EventLoopFuture<Void>] = []
        if kind == .sharded {
            for name in names { sends.append(self.connection.sendUnmatched(Self.command(kind, [name]))) }
        } else {
            sends.append(self.connection.sendUnmatched(Self.command(kind, names)))
        }
        let sent = EventLoopFuture.andAllSucceed(sends, on: loop)
        sent.whenFailure { error in
            // Not connected: the subscription is renewed on reconnection; the caller learns it
            // is not confirmed yet.
            let waiting = self.state.withLockedValue { state -> [EventLoopPromise<Void>] in
                names.flatMap { state.waiting.removeValue(forKey: Subscription(kind: kind, name: $0)) ?? [] }
            }
            for promise in waiting { promise.fail(error) }
        }
        let confirmed = EventLoopFuture.andAllSucceed(promises.map(\.futureResult), on: loop)
        // Confirmations that never come are bounded like any command.
        let timeout = loop.scheduleTask(in: .seconds(5)) {
            let waiting = self.state.withLockedValue { state -> [EventLoopPromise<Void>] in
                names.flatMap { state.waiting.removeValue(forKey: Subscription(kind: kind, name: $0)) ?? [] }
            }
            for promise in waiting { promise.fail(RedisError.timeout) }
        }
        confirmed.whenComplete { _ in timeout.cancel() }
        return confirmed
    }

    private func unsubscribe(_ kind: RedisPubSubMessage.Kind, _ names: [String]) -> EventLoopFuture<Void> {
        self.state.withLockedValue { state in
            for name in names { state.wanted.remove(Subscription(kind: kind, name: name)) }
        }
        let sends = names.map { self.connection.sendUnmatched(Self.command(kind, [$0], subscribe: false)) }
        return EventLoopFuture.andAllComplete(sends, on: self.connection.eventLoop)
    }

    /// Closes the connection for good.
    public func close() async {
        try? await self.connection.close().get()
    }
}
