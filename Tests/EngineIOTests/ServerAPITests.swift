import EngineIO
import EngineIOCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// Records what the Engine.IO layer tells its application.
final class RecordingApplication: EngineIOApplication {
    enum Event: Equatable, Sendable {
        case opened(String)
        case text(String, String)
        case closed(String, EngineIOCloseReason)
    }

    let events = NIOLockedValueBox<[Event]>([])
    let onOpen: @Sendable (EngineIOSocket) -> Void

    init(onOpen: @escaping @Sendable (EngineIOSocket) -> Void = { _ in }) {
        self.onOpen = onOpen
    }

    func sessionOpened(_ socket: EngineIOSocket) {
        self.events.withLockedValue { $0.append(.opened(socket.id)) }
        self.onOpen(socket)
    }

    func textReceived(_ text: String, from socket: EngineIOSocket) {
        self.events.withLockedValue { $0.append(.text(socket.id, text)) }
        socket.send(text)
    }

    func binaryReceived(_ bytes: ByteBuffer, from socket: EngineIOSocket) {}

    func sessionClosed(_ socket: EngineIOSocket, reason: EngineIOCloseReason) {
        self.events.withLockedValue { $0.append(.closed(socket.id, reason)) }
    }

    var snapshot: [Event] { self.events.withLockedValue { $0 } }
}

/// Runs an `HTTPServer` on 127.0.0.1 with a free port for the duration of `body`.
func withServer(
    _ endpoints: [EngineIOServer],
    configure: (inout HTTPServer.Configuration) -> Void = { _ in },
    _ body: @Sendable (Int) async throws -> Void
) async throws {
    try await withHTTPServer(endpoints, configure: configure, body)
}

func sid(of body: String) -> String? {
    guard let start = body.range(of: "\"sid\":\"") else { return nil }
    return String(body[start.upperBound...].prefix { $0 != "\"" })
}

let handshakePath = "/engine.io/?EIO=4&transport=polling"

func endpoint(
    _ app: any EngineIOApplication = EngineIOEchoApplication(),
    _ change: (inout EngineIOConfiguration) -> Void = { _ in }
)
    -> EngineIOServer
{
    var config = EngineIOConfiguration()
    config.path = "/engine.io/"
    change(&config)
    return EngineIOServer(configuration: config, application: app)
}

@Suite("Engine.IO server options", .timeLimit(.minutes(1)))
struct ServerAPITests {
    @Test func allowRequestRejectsHandshakesWithForbidden() async throws {
        let asked = NIOLockedValueBox(0)
        let server = endpoint { config in
            config.allowRequest = { request in
                asked.withLockedValue { $0 += 1 }
                // Decided later than the request arrives: the WebSocket handshake waits for it.
                try? await Task.sleep(for: .milliseconds(20))
                return request.headers.first(name: "x-token") == "good"
            }
        }
        try await withServer([server]) { port in
            let refused = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            #expect(refused.status == 403)
            #expect(refused.body == #"{"code":4,"message":"Forbidden"}"#)
            let accepted = try await blocking {
                try RawHTTP.request(port: port, "GET", handshakePath, headers: [("X-Token", "good")])
            }
            #expect(accepted.status == 200)
            let ws = try await blocking {
                try webSocketHandshake(port: port)
            }
            #expect(ws.status == 403)
            // Asked once per handshake, also when the WebSocket handshake is refused.
            #expect(asked.withLockedValue { $0 } == 3)
            let allowed = try await blocking {
                try RawWebSocket(
                    port: port,
                    path: "/engine.io/?EIO=4&transport=websocket",
                    headers: [("X-Token", "good")]
                )
            }
            let open = try await blocking { try allowed.receiveText() }
            #expect(open.hasPrefix(#"0{"sid":"#))
            // Reads held back while deciding resume after the upgrade.
            try await blocking { try allowed.send("4after") }
            #expect(try await blocking { try allowed.receiveText() } == "4after")
        }
        #expect(asked.withLockedValue { $0 } == 4)
    }

    @Test func customSessionIDsAndTheCookie() async throws {
        let counter = NIOLockedValueBox(0)
        let server = endpoint { config in
            config.sessionIDGenerator = {
                "fixed-"
                    + String(
                        counter.withLockedValue {
                            $0 += 1
                            return $0
                        }
                    )
            }
            config.cookie = CookieConfiguration()
        }
        try await withServer([server]) { port in
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            #expect(sid(of: r.body) == "fixed-1")
            #expect(r.header("set-cookie") == "io=fixed-1; Path=/; HttpOnly; SameSite=Lax")
        }
    }

    @Test func webSocketHandshakesGetTheCookieAndTheSessionLimit() async throws {
        let server = endpoint { config in
            config.sessionIDGenerator = { "ws-fixed" }
            config.cookie = CookieConfiguration()
            config.maxSessions = 1
        }
        try await withServer([server]) { port in
            let ws = try await blocking { try RawWebSocket(port: port, path: "/engine.io/?EIO=4&transport=websocket") }
            // The 101 announces the id that the open packet then carries.
            #expect(ws.responseHead.contains("Set-Cookie: io=ws-fixed; Path=/; HttpOnly; SameSite=Lax"))
            let open = try await blocking { try ws.receiveText() }
            #expect(open.hasPrefix(#"0{"sid":"ws-fixed""#))
            let second = try await blocking {
                try webSocketHandshake(port: port)
            }
            #expect(second.status == 503)
            #expect(second.body == #"{"code":3,"message":"Too many sessions"}"#)
            #expect(server.sessionCount == 1)
        }
    }

    @Test func sessionLimitAnswers503() async throws {
        let server = endpoint { $0.maxSessions = 2 }
        try await withServer([server]) { port in
            for _ in 0..<2 {
                let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
                #expect(r.status == 200)
            }
            let third = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            #expect(third.status == 503)
            #expect(server.sessionCount == 2)
        }
    }

    @Test func listenerAcceptsOnceAndConnectionsReadUpTo16TimesWithSmallFirstBuffers() async throws {
        // Set on every accepted connection before the prologue runs (and before it is registered).
        let seen = NIOLockedValueBox<[String]>([])
        let listenerReads = NIOLockedValueBox<EventLoopFuture<UInt>?>(nil)
        let record: @Sendable (any Channel) throws -> Void = { channel in
            let options = channel.syncOptions
            let reads = try options?.getOption(.maxMessagesPerRead)
            let allocator = try options?.getOption(.recvAllocator) as? AdaptiveRecvByteBufferAllocator
            let sizes = allocator.map { "\($0.minimum)/\($0.initial)/\($0.maximum)" } ?? "none"
            seen.withLockedValue { $0.append("\(reads ?? 0) \(sizes)") }
            // The listener accepts one connection per readiness event: with one pending (the
            // usual case) a second `accept` would only find none.
            listenerReads.withLockedValue { $0 = channel.parent?.getOption(.maxMessagesPerRead) }
        }
        func configure(_ config: inout HTTPServer.Configuration) { config.connectionPrologue = record }
        try await withServer([endpoint()], configure: configure) { port in
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            #expect(r.status == 200)
            #expect(try await listenerReads.withLockedValue { $0 }?.get() == 1)
        }
        #expect(seen.withLockedValue { $0 } == ["16 64/512/65536"])
    }

    @Test func corsOriginListWithCredentials() async throws {
        let server = endpoint { config in
            config.cors = CORSConfiguration(origins: .list(["http://good.test"]), credentials: true)
        }
        try await withServer([server]) { port in
            let good = try await blocking {
                try RawHTTP.request(port: port, "GET", handshakePath, headers: [("Origin", "http://good.test")])
            }
            #expect(good.header("access-control-allow-origin") == "http://good.test")
            #expect(good.header("access-control-allow-credentials") == "true")
            let bad = try await blocking {
                try RawHTTP.request(port: port, "GET", handshakePath, headers: [("Origin", "http://evil.test")])
            }
            #expect(bad.header("access-control-allow-origin") == nil)
            let preflight = try await blocking {
                try RawHTTP.request(
                    port: port,
                    "OPTIONS",
                    handshakePath,
                    headers: [("Origin", "http://good.test"), ("Access-Control-Request-Method", "POST")]
                )
            }
            #expect(preflight.status == 204)
            #expect(preflight.header("access-control-allow-methods") == "GET,HEAD,PUT,PATCH,POST,DELETE")
        }
    }

    @Test func bufferedPacketLimitClosesTheSession() async throws {
        let app = RecordingApplication { socket in
            for i in 0..<5 { socket.send("m\(i)") }
        }
        let server = endpoint(app) { $0.maxBufferedPackets = 4 }
        try await withServer([server]) { port in
            // The handshake answer is the open packet alone; the five messages then overflow the
            // buffer (limit 4) while no GET collects them, which closes the session.
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            #expect(r.status == 200)
            #expect(r.body.hasPrefix("0{") && !r.body.contains("\u{1e}"))
            let id = try #require(sid(of: r.body))
            let poll = try await blocking {
                try RawHTTP.request(port: port, "GET", "/engine.io/?EIO=4&transport=polling&sid=\(id)")
            }
            #expect(poll.status == 400)
            #expect(poll.body == #"{"code":1,"message":"Session ID unknown"}"#)
            #expect(server.sessionCount == 0)
        }
        #expect(app.snapshot.contains { if case .closed(_, .bufferFull) = $0 { return true } else { return false } })
    }

    @Test func transportsAndUpgradesCanBeRestricted() async throws {
        let wsOnly = endpoint { $0.transports = [.websocket] }
        try await withServer([wsOnly]) { port in
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            #expect(r.status == 400)
            #expect(r.body == #"{"code":0,"message":"Transport unknown"}"#)
        }
        let noUpgrades = endpoint { $0.allowUpgrades = false }
        try await withServer([noUpgrades]) { port in
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            #expect(r.body.contains(#""upgrades":[]"#))
        }
    }

    @Test func applicationSeesOpenMessageAndClientClose() async throws {
        let app = RecordingApplication()
        let server = endpoint(app)
        try await withServer([server]) { port in
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            let id = try #require(sid(of: r.body))
            let path = "/engine.io/?EIO=4&transport=polling&sid=\(id)"
            let post = try await blocking { try RawHTTP.request(port: port, "POST", path, body: "4hello\u{1e}1") }
            #expect(post.body == "ok")
            #expect(app.snapshot == [.opened(id), .text(id, "hello"), .closed(id, .transportClose)])
        }
    }

    @Test func anUpgradeThatNeverCompletesIsAbandonedAfterTheUpgradeTimeout() async throws {
        let server = endpoint { $0.upgradeTimeout = .milliseconds(200) }
        try await withServer([server]) { port in
            try await blocking {
                let r = try RawHTTP.request(port: port, "GET", handshakePath)
                let id = try #require(sid(of: r.body))
                // The WebSocket never sends the probe: the server closes it after 200 ms.
                let ws = try RawWebSocket(port: port, path: "/engine.io/?EIO=4&transport=websocket&sid=\(id)")
                let started = Date()
                #expect(try ws.receive(answerPings: false) == .close(1000))
                #expect(Date().timeIntervalSince(started) < 2)
                // The session carries on over polling.
                let path = "/engine.io/?EIO=4&transport=polling&sid=\(id)"
                #expect(try RawHTTP.request(port: port, "POST", path, body: "4still").body == "ok")
                #expect(try RawHTTP.request(port: port, "GET", path).body == "4still")
            }
        }
    }

    @Test func answersToOnePostLeaveInOnePollResponse() async throws {
        // The echo application answers each message as it is handled. A poll held while a POST
        // of three messages arrives gets all three echoes, not the first alone.
        let (post, answer, _) = try await self.postWhileAPollIsHeld("4a\u{1e}4b\u{1e}4c")
        #expect(post.status == 200 && post.body == "ok")
        #expect(answer.status == 200)
        #expect(answer.body == "4a\u{1e}4b\u{1e}4c")
    }

    @Test func aSessionClosedWhileAPostIsHandledStillAnswersThePoll() async throws {
        // A POST whose last packet closes the session: the held poll gets the echoes before it,
        // then the end of the session.
        let (_, answer, sessions) = try await self.postWhileAPollIsHeld("4a\u{1e}1")
        #expect(answer.status == 200)
        #expect(answer.body == "4a\u{1e}6")
        #expect(sessions == 0)
    }

    /// Opens an echo session, holds a poll, then POSTs `body`; returns the POST's response, the
    /// poll's, and the number of sessions still open after both.
    private func postWhileAPollIsHeld(
        _ body: String
    ) async throws -> (post: RawHTTP.Response, poll: RawHTTP.Response, sessions: Int) {
        let events = LogEvents()
        let server = endpoint { $0.logger = events.logger }
        let result = NIOLockedValueBox<(RawHTTP.Response, RawHTTP.Response, Int)?>(nil)
        try await withServer([server]) { port in
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            let path = "/engine.io/?EIO=4&transport=polling&sid=\(try #require(sid(of: r.body)))"
            let poll = Task { try await blocking { try RawHTTP.request(port: port, "GET", path) } }
            #expect(await events.next("long-poll held"))
            let post = try await blocking { try RawHTTP.request(port: port, "POST", path, body: body) }
            let answer = try await poll.value
            // Counted before the server shuts down (which closes every session).
            result.withLockedValue { $0 = (post, answer, server.sessionCount) }
        }
        let (post, poll, sessions) = try #require(result.withLockedValue { $0 })
        return (post, poll, sessions)
    }

    @Test func shutdownAnswersPendingPollsWithClose() async throws {
        let events = LogEvents()
        let server = endpoint { $0.logger = events.logger }
        let pending = NIOLockedValueBox<Task<RawHTTP.Response, any Error>?>(nil)
        try await withServer([server]) { port in
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            let id = try #require(sid(of: r.body))
            let task = Task {
                try await blocking {
                    try RawHTTP.request(port: port, "GET", "/engine.io/?EIO=4&transport=polling&sid=\(id)")
                }
            }
            pending.withLockedValue { $0 = task }
            // Shut down only once the server holds the poll.
            #expect(await events.next("long-poll held"))
        }
        // withServer returned: run() finished its graceful shutdown.
        let response = try await #require(pending.withLockedValue { $0 }).value
        #expect(response.status == 200)
        #expect(response.body == "1")
        #expect(server.sessionCount == 0)
    }
}

/// A WebSocket handshake for a new session, answered like any HTTP request (for refusals).
private func webSocketHandshake(port: Int) throws -> RawHTTP.Response {
    try RawHTTP.request(
        port: port,
        "GET",
        "/engine.io/?EIO=4&transport=websocket",
        headers: [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
        ]
    )
}
