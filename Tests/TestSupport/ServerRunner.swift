public import EngineIO
import Foundation
import NIOCore

/// Runs an `HTTPServer` with `endpoints` on 127.0.0.1 (free port) for the duration of `body`,
/// then cancels it and waits for its graceful shutdown.
///
/// - Parameters:
///   - endpoints: the Engine.IO endpoints to serve.
///   - configure: changes to the HTTP configuration.
///   - body: the test, given the port.
public func withHTTPServer(
    _ endpoints: [EngineIOServer],
    configure: (inout HTTPServer.Configuration) -> Void = { _ in },
    _ body: @Sendable (Int) async throws -> Void
) async throws {
    var config = HTTPServer.Configuration()
    config.host = "127.0.0.1"
    config.port = 0
    config.shutdownTimeout = .seconds(2)
    configure(&config)
    let server = HTTPServer(configuration: config, endpoints: endpoints)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let task = Task {
        try await server.run { address in
            continuation.yield(address.port ?? 0)
            continuation.finish()
        }
    }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else {
        task.cancel()
        throw RawHTTP.Failure(description: "server did not start")
    }
    do {
        try await body(port)
    } catch {
        task.cancel()
        _ = try? await task.value
        throw error
    }
    task.cancel()
    try await task.value
}

/// Runs blocking client code on its own thread, off the cooperative pool.
public func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}
