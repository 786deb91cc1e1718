public import NIOCore

/// The server-driven heartbeat of Engine.IO v4.
///
/// The server sends a ping `pingInterval` after the handshake (and after each pong); if no pong
/// arrives within `pingTimeout` of a ping, the session is closed. There is no grace period: the
/// deadlines are exactly interval and timeout (Engine.IO v4, "Heartbeat"). Time is an input
/// (`now`), so tests drive the machine without clocks.
public struct EngineIOHeartbeatStateMachine: Sendable {
    /// What the caller must do after an event.
    public enum Action: Hashable, Sendable {
        /// Nothing.
        case none
        /// Arm the ping timer for `deadline`.
        case schedulePing(at: NIODeadline)
        /// Send a ping now, and arm the pong timeout for `deadline`.
        case sendPing(timeoutAt: NIODeadline)
        /// No pong arrived in time: close the session ("ping timeout").
        case closeSession
    }

    private enum State: Hashable, Sendable {
        case idle
        case waitingToPing(NIODeadline)
        case awaitingPong(NIODeadline)
        case stopped
    }

    private var state: State = .idle
    /// Time between a pong (or the handshake) and the next ping.
    public let pingInterval: TimeAmount
    /// Time allowed between a ping and its pong.
    public let pingTimeout: TimeAmount

    /// Creates a heartbeat machine.
    ///
    /// - Parameters:
    ///   - pingInterval: time from handshake or pong to the next ping.
    ///   - pingTimeout: time allowed for the pong.
    public init(pingInterval: TimeAmount, pingTimeout: TimeAmount) {
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
    }

    /// The session was opened (handshake sent).
    public mutating func sessionOpened(now: NIODeadline) -> Action {
        switch self.state {
        case .idle:
            let deadline = now + self.pingInterval
            self.state = .waitingToPing(deadline)
            return .schedulePing(at: deadline)
        case .waitingToPing, .awaitingPong, .stopped:
            preconditionFailure("sessionOpened in state \(self.state)")
        }
    }

    /// The ping timer fired.
    public mutating func pingTimerFired(now: NIODeadline) -> Action {
        switch self.state {
        case .waitingToPing(let deadline):
            guard now >= deadline else { return .schedulePing(at: deadline) }
            let timeout = now + self.pingTimeout
            self.state = .awaitingPong(timeout)
            return .sendPing(timeoutAt: timeout)
        case .idle, .awaitingPong, .stopped:
            return .none  // a stale timer
        }
    }

    /// A pong arrived from the client.
    public mutating func pongReceived(now: NIODeadline) -> Action {
        switch self.state {
        case .awaitingPong:
            let deadline = now + self.pingInterval
            self.state = .waitingToPing(deadline)
            return .schedulePing(at: deadline)
        case .idle, .waitingToPing, .stopped:
            return .none  // an unsolicited pong is harmless
        }
    }

    /// The pong timeout timer fired.
    public mutating func pongTimerFired(now: NIODeadline) -> Action {
        switch self.state {
        case .awaitingPong(let deadline):
            guard now >= deadline else { return .none }
            self.state = .stopped
            return .closeSession
        case .idle, .waitingToPing, .stopped:
            return .none
        }
    }

    /// The session closed; every later timer is stale.
    public mutating func stop() {
        self.state = .stopped
    }
}
