import Logging
import NIOCore
import NIOPosix
import RESPCore

/// One Redis connection that keeps itself up: it connects, runs the handshake (`HELLO 3`,
/// `AUTH`, `SELECT`), and after any loss reconnects with exponential backoff, telling its owner
/// each time it is ready again (so that a subscriber subscribes again). Commands sent while it
/// is down fail at once with ``RedisError/notConnected``: nothing is queued without bound.
///
/// Its state lives on one event loop; every method hops there.
final class RedisConnection: Sendable {
    let eventLoop: any EventLoop
    private let core: NIOLoopBoundBox<Core>

    init(
        configuration: RedisConfiguration,
        eventLoop: any EventLoop,
        logger: Logger,
        subscriber: Bool,
        onReady: @escaping @Sendable () -> Void,
        onPush: @escaping @Sendable ([RESPValue]) -> Void
    ) {
        self.eventLoop = eventLoop
        self.core = NIOLoopBoundBox.makeBoxSendingValue(
            Core(
                configuration: configuration,
                eventLoop: eventLoop,
                logger: logger,
                subscriber: subscriber,
                onReady: onReady,
                onPush: onPush
            ),
            as: Core.self,
            eventLoop: eventLoop
        )
    }

    /// Starts connecting.
    func start() {
        self.onLoop { $0.connect() }
    }

    /// Sends a command and completes with its reply.
    func send(_ arguments: [ByteBuffer]) -> EventLoopFuture<RESPValue> {
        let promise = self.eventLoop.makePromise(of: RESPValue.self)
        self.onLoop { $0.send(arguments, promise: promise) }
        return promise.futureResult
    }

    /// Sends a command whose replies are not matched one to one (pub/sub subscriptions): they
    /// arrive as pushes. Fails when not connected.
    func sendUnmatched(_ arguments: [ByteBuffer]) -> EventLoopFuture<Void> {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.onLoop { $0.sendUnmatched(arguments, promise: promise) }
        return promise.futureResult
    }

    /// Whether the connection is up and ready.
    var isReady: EventLoopFuture<Bool> {
        self.eventLoop.submit { self.core.value.isReady }
    }

    /// Closes the connection for good.
    func close() -> EventLoopFuture<Void> {
        self.eventLoop.flatSubmit { self.core.value.close() }
    }

    private func onLoop(_ body: @escaping @Sendable (Core) -> Void) {
        if self.eventLoop.inEventLoop {
            body(self.core.value)
        } else {
            self.eventLoop.execute { body(self.core.value) }
        }
    }

    /// The loop-confined state.
    final class Core {
        private enum State {
            case idle
            case connecting(attempt: Int)
            case ready(any Channel, RedisHandler)
            case waiting(attempt: Int, Scheduled<Void>)
            case closed
        }

        let configuration: RedisConfiguration
        let eventLoop: any EventLoop
        let logger: Logger
        let subscriber: Bool
        let onReady: @Sendable () -> Void
        let onPush: @Sendable ([RESPValue]) -> Void
        private var state = State.idle
        private var timeoutCheck: Scheduled<Void>?

        init(
            configuration: RedisConfiguration,
            eventLoop: any EventLoop,
            logger: Logger,
            subscriber: Bool,
            onReady: @escaping @Sendable () -> Void,
            onPush: @escaping @Sendable ([RESPValue]) -> Void
        ) {
            self.configuration = configuration
            self.eventLoop = eventLoop
            self.logger = logger
            self.subscriber = subscriber
            self.onReady = onReady
            self.onPush = onPush
        }

        var isReady: Bool {
            if case .ready = self.state { return true }
            return false
        }

        func connect(attempt: Int = 0) {
            switch self.state {
            case .idle, .waiting:
                break
            case .connecting, .ready, .closed:
                return
            }
            guard !self.configuration.tls else {
                self.logger.error("rediss:// is not supported by this client yet")
                self.state = .closed
                return
            }
            self.state = .connecting(attempt: attempt)
            let onPush = self.onPush
            let subscriber = self.subscriber
            let maxPending = self.configuration.maxPendingCommands
            let loop = self.eventLoop
            ClientBootstrap(group: loop)
                .connectTimeout(self.configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = RedisHandler(subscriber: subscriber, maxPending: maxPending) { onPush($0) }
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: self.configuration.host, port: self.configuration.port)
                .hop(to: loop)
                .assumeIsolated()
                .flatMap { channel in
                    self.handshake(channel).map { channel }.flatMapErrorThrowing { error in
                        channel.close(promise: nil)
                        throw error
                    }
                }
                .whenComplete { result in
                    switch result {
                    case .success(let channel):
                        guard let handler = try? channel.pipeline.syncOperations.handler(type: RedisHandler.self) else {
                            channel.close(promise: nil)
                            return self.lost(attempt: attempt + 1, error: RedisError.notConnected, channel: channel)
                        }
                        self.connected(channel, handler)
                    case .failure(let error):
                        self.lost(attempt: attempt + 1, error: error, channel: nil)
                    }
                }
        }

        /// `HELLO 3` (with `AUTH`), or `AUTH`; then `SELECT`.
        private func handshake(_ channel: any Channel) -> EventLoopFuture<Void> {
            var commands: [[String]] = []
            let configuration = self.configuration
            switch configuration.protocolVersion {
            case .resp3:
                var hello = ["HELLO", "3"]
                if let password = configuration.password {
                    hello += ["AUTH", configuration.username ?? "default", password]
                }
                commands.append(hello)
            case .resp2:
                if let password = configuration.password {
                    commands.append(["AUTH"] + (configuration.username.map { [$0] } ?? []) + [password])
                }
            }
            if configuration.database != 0 { commands.append(["SELECT", String(configuration.database)]) }
            var future = channel.eventLoop.makeSucceededVoidFuture()
            for command in commands {
                future = future.flatMap {
                    let promise = channel.eventLoop.makePromise(of: RESPValue.self)
                    let request = RedisRequest(
                        arguments: command.map { ByteBuffer(string: $0) },
                        promise: promise,
                        deadline: .now() + configuration.connectTimeout
                    )
                    channel.writeAndFlush(request, promise: nil)
                    return promise.futureResult.map { _ in }
                }
            }
            // A handshake that never answers is cut like a command that never answers.
            let deadline = channel.eventLoop.scheduleTask(in: configuration.connectTimeout) {
                channel.close(promise: nil)
            }
            future.whenComplete { _ in deadline.cancel() }
            return future
        }

        private func connected(_ channel: any Channel, _ handler: RedisHandler) {
            guard case .connecting = self.state else {
                channel.close(promise: nil)
                return
            }
            self.state = .ready(channel, handler)
            self.logger.debug(
                "connected to Redis",
                metadata: ["host": "\(self.configuration.host)", "port": "\(self.configuration.port)"]
            )
            channel.closeFuture.hop(to: self.eventLoop).assumeIsolated().whenComplete { _ in
                guard case .ready(let current, _) = self.state, current === channel else { return }
                self.lost(attempt: 1, error: RedisError.notConnected, channel: channel)
            }
            self.onReady()
        }

        private func lost(attempt: Int, error: any Error, channel: (any Channel)?) {
            switch self.state {
            case .closed:
                return
            case .idle, .connecting, .ready, .waiting:
                break
            }
            self.timeoutCheck?.cancel()
            self.timeoutCheck = nil
            let delay = self.delay(attempt: attempt)
            self.logger.warning(
                "Redis connection lost; reconnecting",
                metadata: ["error": "\(error)", "in": "\(delay.nanoseconds / 1_000_000) ms"]
            )
            let task = self.eventLoop.assumeIsolated().scheduleTask(in: delay) { self.connect(attempt: attempt) }
            self.state = .waiting(attempt: attempt, task)
        }

        private func delay(attempt: Int) -> TimeAmount {
            let initial = self.configuration.initialReconnectDelay.nanoseconds
            let shift = min(max(attempt - 1, 0), 20)
            return .nanoseconds(min(initial << shift, self.configuration.maxReconnectDelay.nanoseconds))
        }

        func send(_ arguments: [ByteBuffer], promise: EventLoopPromise<RESPValue>) {
            guard case .ready(let channel, let handler) = self.state else {
                promise.fail(self.isClosed ? RedisError.closed : RedisError.notConnected)
                return
            }
            let request = RedisRequest(
                arguments: arguments,
                promise: promise,
                deadline: .now() + self.configuration.commandTimeout
            )
            channel.writeAndFlush(request, promise: nil)
            self.armTimeoutCheck(handler, channel)
        }

        func sendUnmatched(_ arguments: [ByteBuffer], promise: EventLoopPromise<Void>) {
            guard case .ready(let channel, _) = self.state else {
                promise.fail(self.isClosed ? RedisError.closed : RedisError.notConnected)
                return
            }
            channel.writeAndFlush(RedisRequest(arguments: arguments, promise: nil, deadline: .now()), promise: promise)
        }

        private var isClosed: Bool {
            if case .closed = self.state { return true }
            return false
        }

        /// A command whose reply is overdue resets the connection: the server (or the network)
        /// is not answering, and later replies could not be matched to commands any more.
        private func armTimeoutCheck(_ handler: RedisHandler, _ channel: any Channel) {
            guard self.timeoutCheck == nil, let deadline = handler.oldestDeadline else { return }
            self.timeoutCheck = self.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                self.timeoutCheck = nil
                guard case .ready(let current, _) = self.state, current === channel else { return }
                if let oldest = handler.oldestDeadline, oldest <= .now() {
                    self.logger.warning("Redis command timed out; resetting the connection")
                    handler.failAll(.timeout)
                    channel.close(promise: nil)
                    // Not ready from now on: commands sent before the close completes must not
                    // wait on a closing channel.
                    self.lost(attempt: 1, error: RedisError.timeout, channel: channel)
                } else {
                    self.armTimeoutCheck(handler, channel)
                }
            }
        }

        func close() -> EventLoopFuture<Void> {
            let previous = self.state
            self.state = .closed
            self.timeoutCheck?.cancel()
            switch previous {
            case .ready(let channel, let handler):
                handler.failAll(.closed)
                return channel.close().recover { _ in }
            case .waiting(_, let task):
                task.cancel()
                return self.eventLoop.makeSucceededVoidFuture()
            case .idle, .connecting, .closed:
                return self.eventLoop.makeSucceededVoidFuture()
            }
        }
    }
}
