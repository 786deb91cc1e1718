import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` (Debian's package, which the test command installs) on a free loopback
/// port, without persistence, for one test; ``stop()`` kills it, ``kill()`` does so abruptly and
/// ``restart()`` brings it back on the same port (fault tests).
public final class RedisServerProcess: @unchecked Sendable {
    // @unchecked: a test drives it from one task at a time.
    private var process: Process?
    /// The port it listens on (127.0.0.1).
    public let port: Int
    /// Extra arguments given at start.
    private let arguments: [String]

    /// The `redis-server` binary, if installed.
    public static var binary: String? {
        ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// Whether tests that need Redis can run: `redis-server` is installed. When
    /// `SOCKETIO_REQUIRE_REDIS` is set (the test command sets it), its absence is an error, not
    /// a skip.
    public static var isAvailable: Bool {
        Self.binary != nil || ProcessInfo.processInfo.environment["SOCKETIO_REQUIRE_REDIS"] != nil
    }

    /// Starts a server and waits until it answers.
    public init(arguments: [String] = []) throws {
        self.port = try Self.freePort()
        self.arguments = arguments
        try self.start()
    }

    deinit { self.process?.terminate() }

    private func start() throws {
        guard let binary = Self.binary else { throw RawHTTP.Failure(description: "redis-server is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            [
                "--port", String(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--protected-mode", "no",
            ] + self.arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // Ready when it accepts a connection and answers PING.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if (try? self.ping()) == true { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw RawHTTP.Failure(description: "redis-server did not start on port \(self.port)")
    }

    private func ping() throws -> Bool {
        let fd = try RawHTTP.connectedSocket(port: self.port, timeoutSeconds: 1)
        defer { close(fd) }
        let command = Array("PING\r\n".utf8)
        _ = command.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        // `-NOAUTH` from a server with a password: it is up.
        let answer = n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : ""
        return answer.hasPrefix("+PONG") || answer.hasPrefix("-NOAUTH")
    }

    /// Stops it and waits (with SIGKILL too: a child of the test process may inherit a signal
    /// mask that holds SIGTERM back, and it keeps nothing on disk anyway).
    public func stop() {
        self.signal(SIGKILL)
    }

    /// Kills it (SIGKILL) and waits: connections drop without a goodbye.
    public func kill() {
        self.signal(SIGKILL)
    }

    /// Sends `signal` and waits until the process is gone (reaping it with `waitpid`:
    /// Foundation's `waitUntilExit` can hang off the main thread, and its `isRunning` may not
    /// notice the exit).
    private func signal(_ signal: Int32) {
        guard let process = self.process else { return }
        let pid = process.processIdentifier
        Glibc.kill(pid, signal)
        let deadline = Date().addingTimeInterval(5)
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid || reaped == -1 { break }  // gone (or reaped by Foundation)
            if Date() > deadline { Glibc.kill(pid, SIGKILL) }
            Thread.sleep(forTimeInterval: 0.005)
        }
        self.process = nil
    }

    /// Starts it again on the same port.
    public func restart() throws {
        try self.start()
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw RawHTTP.Failure(description: "no free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
