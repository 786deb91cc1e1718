import EngineIO
import NIOConcurrencyHelpers
public import NIOCore
public import SocketIOCore

/// A broadcast being described: targets and flags accumulate in a value, and only the final call
/// (`emit`, `emitWithAck`, `fetchSockets`, `socketsJoin`, …) does anything.
public struct BroadcastOperator: Sendable {
    let namespace: SocketIONamespace
    /// The targets and flags so far.
    public private(set) var options: BroadcastOptions
    private var timeout: TimeAmount?

    init(namespace: SocketIONamespace, options: BroadcastOptions = BroadcastOptions(), timeout: TimeAmount? = nil) {
        self.namespace = namespace
        self.options = options
        self.timeout = timeout
    }

    /// Adds target rooms.
    public func to(_ rooms: String...) -> Self { self.to(Set(rooms)) }

    /// Adds target rooms.
    public func to(_ rooms: Set<String>) -> Self {
        var copy = self
        copy.options.rooms.formUnion(rooms)
        return copy
    }

    /// Same as ``to(_:)-(String...)``.
    public func `in`(_ rooms: String...) -> Self { self.to(Set(rooms)) }

    /// Excludes rooms.
    public func except(_ rooms: String...) -> Self { self.except(Set(rooms)) }

    /// Excludes rooms.
    public func except(_ rooms: Set<String>) -> Self {
        var copy = self
        copy.options.except.formUnion(rooms)
        return copy
    }

    /// Drops the packet for receivers that cannot take it right now.
    public var volatile: Self {
        var copy = self
        copy.options.volatile = true
        return copy
    }

    /// Only this server's sockets.
    public var local: Self {
        var copy = self
        copy.options.local = true
        return copy
    }

    /// Whether the packet may be compressed.
    public func compress(_ compress: Bool) -> Self {
        var copy = self
        copy.options.compress = compress
        return copy
    }

    /// The time `emitWithAck` waits for answers.
    public func timeout(_ timeout: TimeAmount) -> Self {
        var copy = self
        copy.timeout = timeout
        return copy
    }

    /// Sends an event to every target (encoded once).
    public func emit(_ event: String, _ args: JSONValue...) { self.emit(event, arguments: args) }

    /// Sends an event to every target (encoded once).
    public func emit(_ event: String, arguments: [JSONValue]) {
        let packet = SocketIOPacket(
            kind: .event,
            namespace: self.namespace.name,
            payload: .array([.string(event)] + arguments)
        )
        self.namespace.adapter.broadcast(packet, options: self.options)
    }

    /// Sends an event to every target, on every server, and collects the answers until every
    /// receiver answered or the timeout (the server's `defaultAckTimeout` unless ``timeout(_:)``
    /// set one) passed, as Node's `emitWithAck` does: complete once every server has said how
    /// many clients it reached and that many answers came; on the timeout, what came.
    ///
    /// - Returns: the answers, and whether some are missing.
    public func emitWithAck(_ event: String, _ args: JSONValue...) async -> BroadcastAckResult {
        await self.emitWithAck(event, arguments: args)
    }

    /// Sends an event and collects the answers (see ``emitWithAck(_:_:)``).
    public func emitWithAck(_ event: String, arguments: [JSONValue]) async -> BroadcastAckResult {
        let packet = SocketIOPacket(
            kind: .event,
            namespace: self.namespace.name,
            payload: .array([.string(event)] + arguments)
        )
        let timeout = self.timeout ?? self.namespace.configuration.defaultAckTimeout
        var options = self.options
        options.flags.timeout = Int(timeout.nanoseconds / 1_000_000)
        let adapter = self.namespace.adapter
        return await withCheckedContinuation { continuation in
            let aggregator = BroadcastAckAggregator(continuation: continuation)
            let timer = Task {
                try? await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
                if !Task.isCancelled { aggregator.timedOut() }
            }
            aggregator.onFinish { timer.cancel() }
            adapter.broadcastWithAck(
                packet,
                options: options,
                timeout: timeout,
                callbacks: BroadcastAckCallbacks(
                    clientCount: { count, local in aggregator.serverReported(clients: count, localReceivers: local) },
                    ack: { aggregator.answered($0) }
                )
            )
            Task { aggregator.serversExpected(await adapter.serverCount()) }
        }
    }

    /// The target sockets, on every server (unless ``local``).
    public func fetchSockets() async -> [SocketIORemoteSocket] {
        await self.namespace.adapter.fetchSockets(self.options)
    }

    /// Makes the targets join rooms.
    public func socketsJoin(_ rooms: String...) { self.namespace.adapter.addSockets(self.options, rooms: Set(rooms)) }

    /// Makes the targets leave rooms.
    public func socketsLeave(_ rooms: String...) { self.namespace.adapter.delSockets(self.options, rooms: Set(rooms)) }

    /// Disconnects the targets.
    public func disconnectSockets(close: Bool = false) {
        self.namespace.adapter.disconnectSockets(self.options, close: close)
    }
}

/// Node's aggregation of a broadcast with acks: complete when every server has reported its
/// client count and as many answers arrived; at the timeout, what arrived.
final class BroadcastAckAggregator: Sendable {
    private struct State {
        var continuation: CheckedContinuation<BroadcastAckResult, Never>?
        var expectedServers: Int?
        var reportedServers = 0
        var expectedClients = 0
        var answers: [SocketIOAckResponse] = []
        var localReceivers: Set<String> = []
        var finished: (@Sendable () -> Void)?
    }

    private let state: NIOLockedValueBox<State>

    init(continuation: CheckedContinuation<BroadcastAckResult, Never>) {
        self.state = NIOLockedValueBox(State(continuation: continuation))
    }

    /// Runs `body` once the result is given (at once if it already was).
    func onFinish(_ body: @escaping @Sendable () -> Void) {
        let now = self.state.withLockedValue { state -> Bool in
            guard state.continuation != nil else { return true }
            state.finished = body
            return false
        }
        if now { body() }
    }

    func serversExpected(_ count: Int) {
        self.update { $0.expectedServers = count }
    }

    func serverReported(clients: Int, localReceivers: [String]?) {
        self.update {
            $0.reportedServers += 1
            $0.expectedClients += clients
            if let localReceivers { $0.localReceivers.formUnion(localReceivers) }
        }
    }

    func answered(_ response: SocketIOAckResponse) {
        self.update { $0.answers.append(response) }
    }

    func timedOut() {
        self.finish(timedOut: true)
    }

    private func update(_ change: (inout State) -> Void) {
        let complete = self.state.withLockedValue { state -> Bool in
            guard state.continuation != nil else { return false }
            change(&state)
            return state.expectedServers == state.reportedServers && state.answers.count >= state.expectedClients
        }
        if complete { self.finish(timedOut: false) }
    }

    private func finish(timedOut: Bool) {
        let done = self.state.withLockedValue {
            state -> (CheckedContinuation<BroadcastAckResult, Never>, BroadcastAckResult, (@Sendable () -> Void)?)? in
            guard let continuation = state.continuation else { return nil }
            state.continuation = nil
            let answeredLocally = Set(state.answers.compactMap(\.socketID))
            let result = BroadcastAckResult(
                answers: state.answers,
                expected: state.expectedServers == state.reportedServers ? state.expectedClients : nil,
                timedOut: timedOut,
                missingLocal: state.localReceivers.subtracting(answeredLocally).sorted()
            )
            defer { state.finished = nil }
            return (continuation, result, state.finished)
        }
        guard let (continuation, result, finished) = done else { return }
        finished?()
        continuation.resume(returning: result)
    }
}
