import EngineIO
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SocketIO
import TestSupport

/// What server-side handlers saw, in order, with a way to wait for an entry.
final class Recorder: Sendable {
    private let entries = NIOLockedValueBox<[String]>([])

    func record(_ entry: String) { self.entries.withLockedValue { $0.append(entry) } }

    var all: [String] { self.entries.withLockedValue { $0 } }

    /// Waits (polling every 5 ms, at most `seconds`) until an entry satisfies `match`.
    func wait(seconds: Double = 5, _ match: (String) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if self.all.contains(where: match) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    func wait(for entry: String, seconds: Double = 5) async -> Bool {
        await self.wait(seconds: seconds) { $0 == entry }
    }
}

/// Runs a Socket.IO server on a free loopback port for `body`, then shuts it down.
func withSocketIO(
    _ configure: (inout SocketIOConfiguration) -> Void = { _ in },
    setup: (SocketIOServer) -> Void,
    _ body: @Sendable (SocketIOServer, Int) async throws -> Void
) async throws {
    var config = SocketIOConfiguration()
    configure(&config)
    let io = SocketIOServer(configuration: config)
    setup(io)
    try await withHTTPServer([io.engine]) { port in try await body(io, port) }
}

/// A raw client connected to `/`.
func connectedClient(port: Int, query: String = "") throws -> RawSocketIOClient {
    let client = try RawSocketIOClient(port: port, query: query)
    _ = try client.connect()
    return client
}

/// A long-polling session connected to `/`; returns its request path.
func pollingClient(port: Int) throws -> String {
    let handshake = try RawHTTP.request(port: port, "GET", "/socket.io/?EIO=4&transport=polling")
    guard let sid = socketID(handshake.body) else { throw RawHTTP.Failure(description: "no sid: \(handshake.body)") }
    let path = "/socket.io/?EIO=4&transport=polling&sid=\(sid)"
    _ = try RawHTTP.request(port: port, "POST", path, body: "40")
    let connected = try RawHTTP.request(port: port, "GET", path)
    guard connected.body.hasPrefix("40{") else {
        throw RawHTTP.Failure(description: "not connected: \(connected.body)")
    }
    return path
}

/// Extracts the socket id from a CONNECT answer such as `0{"sid":"abc"}`.
func socketID(_ answer: String) -> String? {
    guard let start = answer.range(of: "\"sid\":\"") else { return nil }
    return String(answer[start.upperBound...].prefix { $0 != "\"" })
}
