import EngineIOCore
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import EngineIO

/// Requests take effect in the order they arrived, whichever event loop read them (issue 16:
/// the official suite's "forcefully closes the session" sends a long-poll and a POST carrying
/// `1` at once; the poll must be answered `6`). The race is played out deterministically here:
/// both requests take their turns as they arrive, then reach the session in the other order.
@Suite struct RequestOrderTests {
    private let loop = EmbeddedEventLoop()

    private func openSession(
        _ configuration: EngineIOConfiguration = EngineIOConfiguration()
    ) throws -> (EngineIOServer, EngineIOSession) {
        let server = EngineIOServer(configuration: configuration, application: EngineIOEchoApplication())
        let uri = "/socket.io/?EIO=4&transport=polling"
        let request = EngineIORequestInfo(
            method: .GET,
            uri: uri,
            query: EngineIOQuery(uri: uri),
            headers: HTTPHeaders(),
            remoteAddress: nil,
            isSecure: false,
            issuedAtMilliseconds: 0,
            transport: .polling
        )
        let handshake = self.loop.makePromise(of: PollAnswer.self)
        let session = try #require(
            server.openSession(request: request, eventLoop: self.loop, websocket: nil, handshakePoll: handshake)
        )
        _ = try handshake.futureResult.wait()
        return (server, session)
    }

    /// Applies a POST of `packets` to `session` in `turn`; its answer (`nil` for `ok`).
    private func post(
        _ packets: [EngineIOPacket],
        to session: EngineIOSession,
        turn: UInt32?
    ) -> EventLoopFuture<EngineIOError?> {
        let promise = self.loop.makePromise(of: EngineIOError?.self)
        session.inTurn(turn) { HTTPRequestHandler.applyPost(packets, failure: nil, to: session, promise: promise) }
        return promise.futureResult
    }

    @Test func aPollThatArrivedFirstIsAnsweredBeforeTheCloseThatOvertookIt() throws {
        let (server, session) = try self.openSession()
        // The GET arrives (on another loop) and takes its turn; the POST carrying `1` arrives
        // (on the session's loop) and takes the next.
        let (socket, getTurn) = try #require(server.sessionForRequest(id: session.id))
        let postTurn = try #require(server.turn(of: socket))
        #expect(postTurn == getTurn + 1)
        // The POST reaches the session first (its hop was shorter): it waits for the GET.
        let postAnswer = self.post([.close], to: session, turn: postTurn)
        #expect(server.session(id: session.id) != nil, "the close waits for the poll that arrived before it")
        let poll = self.loop.makePromise(of: PollAnswer.self)
        session.inTurn(getTurn) { session.pollReceived(promise: poll, token: 1) }
        // Both applied, in arrival order: the poll answered with a noop, the POST with ok, the
        // session closed and forgotten.
        #expect(try poll.futureResult.wait().packets == [.noop])
        #expect(try postAnswer.wait() == nil)
        #expect(server.session(id: session.id) == nil)
        #expect(server.turn(of: socket) == nil)
    }

    @Test func withoutTurnsTheCloseThatOvertookThePollLeavesItUnknown() throws {
        // What happened before requests took turns: applied as they reached the session, the
        // POST closes it and the poll that arrived first is refused.
        let (server, session) = try self.openSession()
        #expect(try self.post([.close], to: session, turn: nil).wait() == nil)
        let poll = self.loop.makePromise(of: PollAnswer.self)
        session.inTurn(nil) { session.pollReceived(promise: poll, token: 1) }
        #expect(throws: EngineIOError.self) { try poll.futureResult.wait() }
        #expect(server.session(id: session.id) == nil)
    }

    @Test func requestsApplyInTurnOrderWhateverOrderTheyReachTheSession() throws {
        let (server, session) = try self.openSession()
        let socket = try #require(server.session(id: session.id))
        let turns = try (0..<5).map { _ in try #require(server.turn(of: socket)) }
        var applied: [UInt32] = []
        for index in [3, 1, 4, 0, 2] {
            session.inTurn(turns[index]) { applied.append(turns[index]) }
        }
        #expect(applied == turns)
        // Later requests in turn apply at once.
        let next = try #require(server.turn(of: socket))
        session.inTurn(next) { applied.append(next) }
        #expect(applied.last == next)
    }

    @Test func aPollReadAfterThePongDeadlineFindsTheSessionClosedBeforeItsTimerFires() throws {
        // A loop handles the I/O that woke it before its timers: a poll read in the wake-up of the
        // pong deadline must not find the session open (the official suite polls at handshake +
        // pingInterval + pingTimeout and expects 400).
        var configuration = EngineIOConfiguration()
        configuration.pingInterval = .milliseconds(20)
        configuration.pingTimeout = .milliseconds(20)
        let (server, session) = try self.openSession(configuration)
        // The ping timer fires (the session's clock is the wall clock: let it pass first).
        Thread.sleep(forTimeInterval: 0.03)
        self.loop.advanceTime(to: .now())
        // The pong is now awaited; its deadline passes, but its timer is not run.
        Thread.sleep(forTimeInterval: 0.03)
        #expect(server.session(id: session.id) != nil)
        let poll = self.loop.makePromise(of: PollAnswer.self)
        session.inTurn(server.turn(of: try #require(server.session(id: session.id)))) {
            session.pollReceived(promise: poll, token: 1)
        }
        #expect(throws: EngineIOError.self) { try poll.futureResult.wait() }
        #expect(server.session(id: session.id) == nil)
    }
}
