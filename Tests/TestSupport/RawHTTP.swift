import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A deliberately small blocking HTTP/1.1 client for loopback tests: one request per connection
/// (`Connection: close`), bounded by a receive timeout.
public enum RawHTTP {
    /// A parsed response.
    public struct Response: Sendable {
        /// The status code.
        public var status: Int
        /// Header lines, names lower-cased, in order.
        public var headers: [(String, String)]
        /// The body as text.
        public var body: String

        /// The first value of header `name`.
        public func header(_ name: String) -> String? {
            self.headers.first { $0.0 == name.lowercased() }?.1
        }
    }

    /// Errors of the raw client.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong.
        public var description: String

        /// Creates a failure.
        public init(description: String) { self.description = description }
    }

    /// Sends `request` (raw bytes, CRLFs included) to 127.0.0.1:`port` and reads until the server
    /// closes the connection or `timeoutSeconds` pass without data.
    ///
    /// - Returns: the raw response bytes.
    public static func exchange(port: Int, request: String, timeoutSeconds: Int = 5) throws -> [UInt8] {
        let fd = try self.connectedSocket(port: port, timeoutSeconds: timeoutSeconds)
        defer { close(fd) }
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure(description: "send failed") }
            sent += n
        }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    /// A TCP socket connected to 127.0.0.1:`port`, with reads bounded by `timeoutSeconds`.
    public static func connectedSocket(port: Int, timeoutSeconds: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket failed") }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw Failure(description: "connect failed")
        }
        return fd
    }

    /// Sends one request and parses the response.
    ///
    /// - Parameters:
    ///   - port: the server port on 127.0.0.1.
    ///   - method: the method.
    ///   - path: the request target.
    ///   - headers: extra headers.
    ///   - body: the body.
    /// - Returns: the response.
    public static func request(
        port: Int,
        _ method: String,
        _ path: String,
        headers: [(String, String)] = [],
        body: String? = nil
    ) throws -> Response {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        return try self.parse(self.exchange(port: port, request: text))
    }

    /// Parses a response with a `Content-Length` body (or a body that ends at EOF).
    public static func parse(_ bytes: [UInt8]) throws -> Response {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else {
            throw Failure(description: "no response head in \(text.prefix(200))")
        }
        let lines = text[..<split.lowerBound].split(separator: "\r\n")
        guard let statusLine = lines.first else { throw Failure(description: "empty response") }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure(description: "bad status line") }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            headers.append((name, String(value)))
        }
        return Response(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}

/// A blocking loopback connection for tests that send a request in pieces (or never finish it)
/// and read what the server answers meanwhile. Every read is bounded by the timeout.
///
/// `@unchecked Sendable`: used from one thread at a time (handed over through `blocking`).
public final class RawConnection: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to 127.0.0.1:`port`.
    public init(port: Int, timeoutSeconds: Int = 5) throws {
        self.fd = try RawHTTP.connectedSocket(port: port, timeoutSeconds: timeoutSeconds)
    }

    deinit { close(self.fd) }

    /// Sends `text` (or as much as the server takes before it closes: `false` then).
    @discardableResult
    public func send(_ text: String) -> Bool { self.send(Array(text.utf8)) }

    /// Sends `bytes`; `false` when the connection failed first.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes {
                Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    /// Reads one response (its head, then a `Content-Length` body).
    ///
    /// - Throws: when the connection closes or the timeout passes first.
    public func response() throws -> RawHTTP.Response {
        while true {
            if let end = self.headEnd() {
                let head = try RawHTTP.parse(Array(self.buffer[..<(end + 4)]))
                let length = Int(head.header("content-length") ?? "0") ?? 0
                while self.buffer.count < end + 4 + length {
                    guard try self.fill() else { throw RawHTTP.Failure(description: "closed in a body") }
                }
                let body = String(decoding: self.buffer[(end + 4)..<(end + 4 + length)], as: UTF8.self)
                self.buffer.removeFirst(end + 4 + length)
                return RawHTTP.Response(status: head.status, headers: head.headers, body: body)
            }
            guard try self.fill() else {
                throw RawHTTP.Failure(description: "closed before a response (\(self.buffer.count) bytes)")
            }
        }
    }

    /// Whether the server closed the connection (end of stream, or a reset) within the timeout,
    /// reading and dropping anything before that.
    public func isClosedByServer() -> Bool {
        while true {
            do {
                guard try self.fill() else { return true }
            } catch {
                return errno == ECONNRESET
            }
        }
    }

    private func headEnd() -> Int? {
        guard self.buffer.count >= 4 else { return nil }
        for i in 0...(self.buffer.count - 4)
        where self.buffer[i] == 13 && self.buffer[i + 1] == 10 && self.buffer[i + 2] == 13 && self.buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw RawHTTP.Failure(description: "read failed or timed out (errno \(errno))") }
        if n == 0 { return false }
        self.buffer.append(contentsOf: chunk[0..<n])
        return true
    }
}
