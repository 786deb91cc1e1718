public import EngineIO
public import EngineIOCore
import Foundation
import NIOConcurrencyHelpers
public import NIOCore

/// A Socket.IO client in the same process, without sockets: a long-polling Engine.IO session
/// driven by calls (``EngineIOServer/openLocalSession(on:uri:headers:)``), with the Socket.IO
/// text protocol on top. Tests of the Socket.IO layer and of adapters use it instead of
/// loopback connections: nothing waits on a socket, and every wait is on an event (a packet),
/// bounded by a timeout.
public final class LocalSocketIOClient: Sendable {
    private let session: LocalEngineSession
    private struct State {
        /// Packets received and not yet taken.
        var inbox: [EngineIOPacket] = []
        /// The long-poll in flight (at most one: a second would close the session).
        var poll: EventLoopFuture<[EngineIOPacket]>?
    }

    private let state = NIOLockedValueBox(State())

    /// The Engine.IO session id.
    public var engineID: String { self.session.id }

    private init(session: LocalEngineSession) {
        self.session = session
    }

    /// Opens a session on `server`, on `loop`.
    ///
    /// - Parameter query: extra query parameters, such as `&name=a`.
    public static func open(
        _ server: EngineIOServer,
        on loop: any EventLoop,
        query: String = ""
    ) async throws
        -> LocalSocketIOClient
    {
        let path = server.configuration.path
        let (session, _) = try await server.openLocalSession(on: loop, uri: "\(path)?EIO=4&transport=polling\(query)")
            .get()
        return LocalSocketIOClient(session: session)
    }

    /// Sends Socket.IO packets (their text, without Engine.IO's `4`), in one POST.
    public func send(_ packets: String...) async throws {
        try await self.session.post(packets.map { .message($0) }).get()
    }

    /// Sends a Socket.IO packet followed by its binary attachments, in one POST.
    public func send(_ packet: String, attachments: [[UInt8]]) async throws {
        try await self.session.post([.message(packet)] + attachments.map { .binaryMessage(ByteBuffer(bytes: $0)) })
            .get()
    }

    /// The next message from the server (pings are answered and skipped), or `nil` when none
    /// came within `timeout` (the poll stays in flight for the next call).
    public func receive(timeout: TimeAmount = .seconds(5)) async throws -> EngineIOPacket? {
        let deadline = ContinuousClock.now + .nanoseconds(timeout.nanoseconds)
        while true {
            if let packet = self.take() {
                switch packet {
                case .ping(let payload):
                    try await self.session.post([.pong(payload)]).get()
                    continue
                case .close:
                    return packet
                case .message, .binaryMessage, .encodedMessage:
                    return packet
                case .open, .pong, .upgrade, .noop:
                    continue
                }
            }
            let poll = self.state.withLockedValue { state -> EventLoopFuture<[EngineIOPacket]> in
                if let poll = state.poll { return poll }
                let poll = self.session.poll()
                state.poll = poll
                return poll
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return nil }
            guard let packets = try await Self.wait(poll, upTo: left) else { return nil }
            self.state.withLockedValue { state in
                state.poll = nil
                state.inbox += packets
            }
        }
    }

    /// The next text message (a Socket.IO packet, without the `4`).
    ///
    /// - Throws: when none comes within `timeout`, or the session closes.
    public func receiveText(timeout: TimeAmount = .seconds(5)) async throws -> String {
        switch try await self.receive(timeout: timeout) {
        case .message(let text)?: return text
        case .encodedMessage(let bytes)?:
            // The wire form, `4` first (a packet encoded once for its receivers).
            return String(String(buffer: bytes).dropFirst())
        case let other: throw LocalClientError(description: "expected a text message, got \(String(describing: other))")
        }
    }

    /// The next binary message.
    ///
    /// - Throws: when none comes within `timeout`.
    public func receiveBinary(timeout: TimeAmount = .seconds(5)) async throws -> [UInt8] {
        switch try await self.receive(timeout: timeout) {
        case .binaryMessage(let bytes)?: return Array(bytes.readableBytesView)
        case let other: throw LocalClientError(description: "expected binary, got \(String(describing: other))")
        }
    }

    /// Connects to a namespace; returns the socket id.
    ///
    /// - Throws: when the server refuses (the text of its answer is in the error).
    public func connect(namespace: String = "/", auth: String? = nil) async throws -> String {
        let prefix = namespace == "/" ? "" : namespace + ","
        try await self.send("0" + prefix + (auth ?? ""))
        let answer = try await self.receiveText()
        guard answer.hasPrefix("0" + prefix), let start = answer.range(of: "\"sid\":\"") else {
            throw LocalClientError(description: "not connected: \(answer)")
        }
        return String(answer[start.upperBound...].prefix { $0 != "\"" })
    }

    /// Ends the session as a client that goes away would.
    public func close() {
        self.session.close()
    }

    private func take() -> EngineIOPacket? {
        self.state.withLockedValue { state in state.inbox.isEmpty ? nil : state.inbox.removeFirst() }
    }

    private static func wait(
        _ future: EventLoopFuture<[EngineIOPacket]>,
        upTo timeout: Duration
    ) async throws -> [EngineIOPacket]? {
        // A race between the poll and a timer; the poll itself is not cancelled (it stays in
        // flight, and its packets are taken by the next call).
        let done = NIOLockedValueBox(false)
        return try await withCheckedThrowingContinuation { continuation in
            future.whenComplete { result in
                guard
                    done.withLockedValue({ claimed in
                        defer { claimed = true }
                        return !claimed
                    })
                else { return }
                continuation.resume(with: result.map { Optional($0) })
            }
            Task {
                try? await Task.sleep(for: timeout)
                guard
                    done.withLockedValue({ claimed in
                        defer { claimed = true }
                        return !claimed
                    })
                else { return }
                continuation.resume(returning: nil)
            }
        }
    }
}

/// What went wrong in a ``LocalSocketIOClient``.
public struct LocalClientError: Error, CustomStringConvertible {
    /// The description.
    public var description: String
}
