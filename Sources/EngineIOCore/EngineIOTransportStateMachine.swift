import NIOCore

/// The transport side of one Engine.IO v4 session: which transport carries it, the long-poll and
/// POST bookkeeping, the outgoing buffer while polling, and the polling → WebSocket upgrade.
///
/// Every event method returns what the caller must do; the caller performs the I/O. The buffer of
/// packets waiting for a long-poll is bounded by `maxBufferedPackets`.
public struct EngineIOTransportStateMachine: Sendable {
    struct Polling: Hashable, Sendable {
        var getPending = false
        var postInFlight = false
    }

    private enum State: Hashable, Sendable {
        case polling(Polling)
        case upgrading(Polling, probed: Bool)
        case websocket
        case closed
    }

    private var state: State
    /// Packets waiting for a long-poll. Small at first: WebSocket sessions never use it, and
    /// the default capacity of 16 cost 400 bytes per connection.
    private var buffer = CircularBuffer<EngineIOPacket>(initialCapacity: 1)
    /// The most packets that may wait for a long-poll before the session is closed.
    public let maxBufferedPackets: Int
    /// The most bytes that may wait for a long-poll before the session is closed.
    public let maxBufferedBytes: Int
    private var bufferedBytes = 0

    /// Creates the machine for a new session.
    ///
    /// - Parameters:
    ///   - transport: the transport the handshake came over.
    ///   - maxBufferedPackets: the most packets that may wait for a long-poll.
    ///   - maxBufferedBytes: the most bytes that may wait for a long-poll.
    public init(transport: EngineIOTransport, maxBufferedPackets: Int, maxBufferedBytes: Int = .max) {
        switch transport {
        case .polling: self.state = .polling(Polling())
        case .websocket: self.state = .websocket
        }
        self.maxBufferedPackets = maxBufferedPackets
        self.maxBufferedBytes = maxBufferedBytes
    }

    /// The transport currently carrying the session, or `nil` once closed.
    public var currentTransport: EngineIOTransport? {
        switch self.state {
        case .polling, .upgrading: return .polling
        case .websocket: return .websocket
        case .closed: return nil
        }
    }

    /// Whether the session is closed.
    public var isClosed: Bool { self.state == .closed }

    /// Whether an upgrade is in progress.
    public var isUpgrading: Bool {
        if case .upgrading = self.state { return true }
        return false
    }

    /// The number of packets waiting for a long-poll.
    public var bufferedCount: Int { self.buffer.count }

    // MARK: Sending

    /// What to do with a packet the server wants to send.
    public enum SendAction: Hashable, Sendable {
        /// It waits in the buffer for the next long-poll.
        case buffered
        /// Answer the pending long-poll with these packets now.
        case answerPoll([EngineIOPacket])
        /// Write it to the WebSocket now.
        case writeWebSocket(EngineIOPacket)
        /// The buffer is full: close the session (``EngineIOCloseReason/bufferFull``).
        case closeSession(EngineIOCloseReason)
        /// The session is closed; the packet is dropped.
        case dropped
    }

    /// The server queued `packet` for the client.
    public mutating func packetQueued(_ packet: EngineIOPacket) -> SendAction {
        switch self.state {
        case .polling(var p):
            self.buffer.append(packet)
            self.bufferedBytes += packet.wireSize
            if self.overLimit { return .closeSession(.bufferFull) }
            guard p.getPending else { return .buffered }
            p.getPending = false
            self.state = .polling(p)
            return .answerPoll(self.drain())
        case .upgrading(var p, let probed):
            self.buffer.append(packet)
            self.bufferedBytes += packet.wireSize
            if self.overLimit { return .closeSession(.bufferFull) }
            guard p.getPending else { return .buffered }
            p.getPending = false
            self.state = .upgrading(p, probed: probed)
            return .answerPoll(self.drain())
        case .websocket:
            return .writeWebSocket(packet)
        case .closed:
            return .dropped
        }
    }

    /// Takes the packets buffered since the last answer: the session adds them to a poll
    /// answer it has decided but not yet sent, so that everything queued while it handles one
    /// request leaves in one response.
    public mutating func takeBuffered() -> [EngineIOPacket] {
        self.drain()
    }

    // MARK: Long-polling

    /// What to do with a long-poll GET.
    public enum PollAction: Hashable, Sendable {
        /// Answer it now with these packets.
        case answer([EngineIOPacket])
        /// Hold it until a packet is queued.
        case hold
        /// A GET was already pending: answer the newcomer with 400 and close the session.
        case overlap
        /// Answer it with this error.
        case reject(EngineIOError)
    }

    /// A long-poll GET arrived.
    public mutating func pollRequestReceived() -> PollAction {
        switch self.state {
        case .polling(var p):
            if p.getPending { return .overlap }
            if !self.buffer.isEmpty { return .answer(self.drain()) }
            p.getPending = true
            self.state = .polling(p)
            return .hold
        case .upgrading(var p, let probed):
            if p.getPending { return .overlap }
            if !self.buffer.isEmpty { return .answer(self.drain()) }
            // After the probe, the client is waiting for the polling side to go quiet: a noop
            // answers it at once so it can send the upgrade packet (Engine.IO v4, "Upgrade").
            if probed { return .answer([.noop]) }
            p.getPending = true
            self.state = .upgrading(p, probed: probed)
            return .hold
        case .websocket:
            return .reject(.badRequest)
        case .closed:
            return .reject(.unknownSid)
        }
    }

    /// The pending long-poll's connection closed before it was answered.
    ///
    /// - Returns: the reason to close the session with, or `nil` when nothing was pending.
    public mutating func pollRequestAborted() -> EngineIOCloseReason? {
        switch self.state {
        case .polling(let p), .upgrading(let p, _):
            return p.getPending ? .transportError : nil
        case .websocket, .closed:
            return nil
        }
    }

    /// What to do with a POST.
    public enum PostAction: Hashable, Sendable {
        /// Read its body and process its packets.
        case accept
        /// Another POST is still being processed: answer 400 and close the session.
        case overlap
        /// Answer it with this error.
        case reject(EngineIOError)
    }

    /// A POST arrived.
    public mutating func postReceived() -> PostAction {
        switch self.state {
        case .polling(var p):
            if p.postInFlight { return .overlap }
            p.postInFlight = true
            self.state = .polling(p)
            return .accept
        case .upgrading(var p, let probed):
            if p.postInFlight { return .overlap }
            p.postInFlight = true
            self.state = .upgrading(p, probed: probed)
            return .accept
        case .websocket:
            return .reject(.badRequest)
        case .closed:
            return .reject(.unknownSid)
        }
    }

    /// The POST's packets have been processed.
    public mutating func postFinished() {
        switch self.state {
        case .polling(var p):
            p.postInFlight = false
            self.state = .polling(p)
        case .upgrading(var p, let probed):
            p.postInFlight = false
            self.state = .upgrading(p, probed: probed)
        case .websocket, .closed:
            break
        }
    }

    // MARK: Upgrade

    /// A WebSocket for this session was opened. Returns `true` when it becomes the upgrade
    /// candidate; `false` when it must be closed at once (an upgrade is already in progress or
    /// done, or the session is closed), leaving any earlier WebSocket untouched.
    public mutating func websocketUpgradeRequested() -> Bool {
        switch self.state {
        case .polling(let p):
            self.state = .upgrading(p, probed: false)
            return true
        case .upgrading, .websocket, .closed:
            return false
        }
    }

    /// The upgrade candidate sent `2probe`. The caller answers `3probe` on that WebSocket, and
    /// answers the pending long-poll (if any) with the returned packets.
    ///
    /// - Returns: packets for the pending long-poll, or `nil` when none is pending.
    public mutating func probeReceived() -> [EngineIOPacket]? {
        switch self.state {
        case .upgrading(var p, _):
            guard p.getPending else {
                self.state = .upgrading(p, probed: true)
                return nil
            }
            p.getPending = false
            self.state = .upgrading(p, probed: true)
            return self.buffer.isEmpty ? [.noop] : self.drain()
        case .polling, .websocket, .closed:
            return nil
        }
    }

    /// What to do once the client sent the upgrade packet `5`.
    public enum UpgradeAction: Hashable, Sendable {
        /// The session now lives on the WebSocket: answer a pending long-poll (if
        /// `answerPendingPoll`) with a noop, then write `flush` to the WebSocket.
        case upgraded(answerPendingPoll: Bool, flush: [EngineIOPacket])
        /// Not upgrading: ignore the packet.
        case ignore
    }

    /// The upgrade candidate sent `5`.
    public mutating func upgradeReceived() -> UpgradeAction {
        switch self.state {
        case .upgrading(let p, _):
            self.state = .websocket
            return .upgraded(answerPendingPoll: p.getPending, flush: self.drain())
        case .polling, .websocket, .closed:
            return .ignore
        }
    }

    /// The upgrade candidate failed (upgrade timeout, or its WebSocket closed); the session stays
    /// on long-polling.
    ///
    /// - Returns: `true` when an upgrade was in progress.
    public mutating func upgradeFailed() -> Bool {
        switch self.state {
        case .upgrading(let p, _):
            self.state = .polling(p)
            return true
        case .polling, .websocket, .closed:
            return false
        }
    }

    // MARK: Closing

    /// What to do when the session closes.
    public struct CloseAction: Hashable, Sendable {
        /// Answer the pending long-poll with this packet (`6` when the client asked to close,
        /// `1` when the server closes), or `nil` when none is pending.
        public var answerPendingPoll: EngineIOPacket?
        /// Close the session's WebSocket.
        public var closeWebSocket: Bool
        /// Close the WebSocket that was being upgraded to.
        public var closeUpgradeCandidate: Bool
    }

    /// The session closes.
    ///
    /// - Parameter byClient: whether the client asked for it (a close packet).
    /// - Returns: what to finish, or `nil` when the session was already closed.
    public mutating func closeRequested(byClient: Bool) -> CloseAction? {
        let pendingAnswer: EngineIOPacket = byClient ? .noop : .close
        let result: CloseAction?
        switch self.state {
        case .polling(let p):
            result = CloseAction(
                answerPendingPoll: p.getPending ? pendingAnswer : nil,
                closeWebSocket: false,
                closeUpgradeCandidate: false
            )
        case .upgrading(let p, _):
            result = CloseAction(
                answerPendingPoll: p.getPending ? pendingAnswer : nil,
                closeWebSocket: false,
                closeUpgradeCandidate: true
            )
        case .websocket:
            result = CloseAction(answerPendingPoll: nil, closeWebSocket: true, closeUpgradeCandidate: false)
        case .closed:
            return nil
        }
        self.state = .closed
        self.buffer.removeAll()
        self.bufferedBytes = 0
        return result
    }

    private var overLimit: Bool {
        self.buffer.count > self.maxBufferedPackets || self.bufferedBytes > self.maxBufferedBytes
    }

    private mutating func drain() -> [EngineIOPacket] {
        let packets = Array(self.buffer)
        self.buffer.removeAll(keepingCapacity: true)
        self.bufferedBytes = 0
        return packets
    }
}
