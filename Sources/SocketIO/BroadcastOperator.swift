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

    /// Sends an event to every target and collects their acks until all answered or the timeout
    /// (the server's `defaultAckTimeout` unless ``timeout(_:)`` set one) passed.
    ///
    /// - Returns: the answers, and who did not answer.
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
        return await self.namespace.adapter.broadcastWithAck(
            packet,
            options: self.options,
            timeout: self.timeout ?? self.namespace.configuration.defaultAckTimeout
        )
    }

    /// The target sockets.
    public func fetchSockets() async -> [SocketIOSocket] { await self.namespace.adapter.fetchSockets(self.options) }

    /// Makes the targets join rooms.
    public func socketsJoin(_ rooms: String...) { self.namespace.adapter.addSockets(self.options, rooms: Set(rooms)) }

    /// Makes the targets leave rooms.
    public func socketsLeave(_ rooms: String...) { self.namespace.adapter.delSockets(self.options, rooms: Set(rooms)) }

    /// Disconnects the targets.
    public func disconnectSockets(close: Bool = false) {
        self.namespace.adapter.disconnectSockets(self.options, close: close)
    }
}

/// Collects the answers of a broadcast with ack.
enum BroadcastAckCollector {
    private final class Collector: Sendable {
        struct State {
            /// Receivers that neither answered nor left.
            var pending: Set<String>
            /// Receivers that left (disconnected) without answering.
            var failed: [String] = []
            var responses: [String: [JSONValue]] = [:]
            var continuation: CheckedContinuation<BroadcastAckResult, Never>?
        }

        typealias Completion = (CheckedContinuation<BroadcastAckResult, Never>, BroadcastAckResult)

        let state: NIOLockedValueBox<State>

        init(waiting: Set<String>, continuation: CheckedContinuation<BroadcastAckResult, Never>) {
            self.state = NIOLockedValueBox(State(pending: waiting, continuation: continuation))
        }

        func record(_ id: String, _ result: Result<[JSONValue], SocketIOAckError>) {
            let done = self.state.withLockedValue { state -> Completion? in
                guard state.pending.remove(id) != nil else { return nil }
                switch result {
                case .success(let args): state.responses[id] = args
                case .failure: state.failed.append(id)
                }
                return state.pending.isEmpty ? Self.finish(&state) : nil
            }
            if let (continuation, result) = done { continuation.resume(returning: result) }
        }

        /// Ends the wait; returns the receivers still pending (their acks must be forgotten).
        func timedOut() -> [String] {
            let done = self.state.withLockedValue { state -> (Completion, [String])? in
                let pending = Array(state.pending)
                guard let completion = Self.finish(&state) else { return nil }
                return (completion, pending)
            }
            guard let ((continuation, result), pending) = done else { return [] }
            continuation.resume(returning: result)
            return pending
        }

        private static func finish(_ state: inout State) -> Completion? {
            guard let continuation = state.continuation else { return nil }
            state.continuation = nil
            let missing = (Array(state.pending) + state.failed).sorted()
            return (continuation, BroadcastAckResult(responses: state.responses, missing: missing))
        }
    }

    static func collect(
        packet: SocketIOPacket,
        receivers: [SocketIOSocket],
        options: BroadcastOptions,
        timeout: TimeAmount
    ) async -> BroadcastAckResult {
        guard let first = receivers.first else { return BroadcastAckResult(responses: [:], missing: []) }
        let ackID = first.namespace.nextAckID()
        var packet = packet
        packet.ackID = ackID
        let encoded = OutgoingPacket(packet)
        return await withCheckedContinuation { continuation in
            let collector = Collector(waiting: Set(receivers.map(\.id)), continuation: continuation)
            let timer = first.engine.eventLoop.scheduleTask(in: timeout) {
                let missing = collector.timedOut()
                guard !missing.isEmpty else { return }
                // One pass over the receivers, not one search per missing answer.
                let byID = Dictionary(receivers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                for id in missing { byID[id]?.completeAck(id: ackID, .failure(.timeout)) }
            }
            for socket in receivers {
                let registered = socket.registerAck(id: ackID, timeout: nil) { result in
                    collector.record(socket.id, result)
                }
                if registered { socket.send(encoded, volatile: options.volatile, compress: options.compress) }
            }
            // Once every receiver answered (or left), the timer has nothing left to do.
            if collector.state.withLockedValue({ $0.continuation == nil }) { timer.cancel() }
        }
    }
}
