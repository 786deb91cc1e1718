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
    var http = HTTPServer.Configuration()
    http.host = "127.0.0.1"
    http.port = 0
    http.shutdownTimeout = .seconds(2)
    let server = HTTPServer(configuration: http, endpoints: [io.engine])
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let task = Task {
        try await server.run { address in
            continuation.yield(address.port ?? 0)
            continuation.finish()
        }
    }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else { throw RawHTTP.Failure(description: "no port") }
    do {
        try await body(io, port)
    } catch {
        task.cancel()
        _ = try? await task.value
        throw error
    }
    task.cancel()
    try await task.value
}

/// Runs blocking client code off the cooperative pool.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// Extracts the socket id from a CONNECT answer such as `0{"sid":"abc"}`.
func socketID(_ answer: String) -> String? {
    guard let start = answer.range(of: "\"sid\":\"") else { return nil }
    return String(answer[start.upperBound...].prefix { $0 != "\"" })
}
