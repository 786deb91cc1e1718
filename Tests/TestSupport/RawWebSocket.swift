#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small blocking WebSocket client (RFC 6455) for loopback tests: masked frames out, frames in,
/// every read bounded by a timeout. Speaks Engine.IO/Socket.IO text only through its helpers.
///
/// `@unchecked Sendable`: a test hands the client from one thread to the next (through
/// `blocking`), but never uses it from two threads at once; each step finishes before the next.
public final class RawWebSocket: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []
    /// Whether the last data frame received had RSV1 set (permessage-deflate compressed it).
    public private(set) var lastRSV1 = false
    /// The head of the server's 101 response (status line and headers).
    public private(set) var responseHead = ""

    /// A received message.
    public enum Message: Equatable, Sendable {
        /// A text frame.
        case text(String)
        /// A binary frame.
        case binary([UInt8])
        /// A close frame with its code.
        case close(UInt16?)
        /// The connection ended.
        case eof
    }

    /// Connects and upgrades; throws unless the server answers 101.
    ///
    /// - Parameters:
    ///   - port: the server port on 127.0.0.1.
    ///   - path: the request target.
    ///   - headers: extra request headers.
    ///   - timeoutSeconds: the bound on every read.
    public init(port: Int, path: String, headers: [(String, String)] = [], timeoutSeconds: Int = 5) throws {
        self.fd = try RawHTTP.connectedSocket(port: port, timeoutSeconds: timeoutSeconds)
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try self.write(Array(request.utf8))
        while true {
            if let end = self.find([13, 10, 13, 10]) {
                let head = String(decoding: self.buffer[0..<end], as: UTF8.self)
                self.buffer.removeFirst(end + 4)
                guard head.hasPrefix("HTTP/1.1 101") else {
                    throw RawHTTP.Failure(description: "upgrade refused: \(head.prefix(40))")
                }
                self.responseHead = head
                return
            }
            guard try self.fill() else { throw RawHTTP.Failure(description: "closed during upgrade") }
        }
    }

    deinit { close(self.fd) }

    private func find(_ needle: [UInt8]) -> Int? {
        guard self.buffer.count >= needle.count else { return nil }
        for i in 0...(self.buffer.count - needle.count) where Array(self.buffer[i..<i + needle.count]) == needle {
            return i
        }
        return nil
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw RawHTTP.Failure(description: "read timed out") }
        if n == 0 { return false }
        self.buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    private func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes {
                Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw RawHTTP.Failure(description: "send failed") }
            sent += n
        }
    }

    /// Sends one masked frame.
    public func sendFrame(opcode: UInt8, _ payload: [UInt8]) throws {
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count < 65536 {
            frame.append(0x80 | 126)
            frame.append(UInt8(payload.count >> 8))
            frame.append(UInt8(payload.count & 0xFF))
        } else {
            frame.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((payload.count >> shift) & 0xFF)) }
        }
        let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame.append(contentsOf: key)
        for (i, byte) in payload.enumerated() { frame.append(byte ^ key[i % 4]) }
        try self.write(frame)
    }

    /// Sends a text frame.
    public func send(_ text: String) throws { try self.sendFrame(opcode: 1, Array(text.utf8)) }

    /// Sends a binary frame.
    public func send(binary: [UInt8]) throws { try self.sendFrame(opcode: 2, binary) }

    /// Receives the next message; with `answerPings`, Engine.IO pings (`2`) are answered and skipped.
    public func receive(answerPings: Bool = true) throws -> Message {
        while true {
            while self.buffer.count < 2 { guard try self.fill() else { return .eof } }
            let opcode = self.buffer[0] & 0x0F
            let rsv1 = self.buffer[0] & 0x40 != 0
            var length = Int(self.buffer[1] & 0x7F)
            var offset = 2
            if length == 126 {
                while self.buffer.count < 4 { guard try self.fill() else { return .eof } }
                length = Int(self.buffer[2]) << 8 | Int(self.buffer[3])
                offset = 4
            } else if length == 127 {
                while self.buffer.count < 10 { guard try self.fill() else { return .eof } }
                length = self.buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }
                offset = 10
            }
            while self.buffer.count < offset + length { guard try self.fill() else { return .eof } }
            let payload = Array(self.buffer[offset..<offset + length])
            self.buffer.removeFirst(offset + length)
            if opcode == 1 || opcode == 2 { self.lastRSV1 = rsv1 }
            switch opcode {
            case 1:
                let text = String(decoding: payload, as: UTF8.self)
                if answerPings && text == "2" {
                    try self.send("3")
                    continue
                }
                return .text(text)
            case 2: return .binary(payload)
            case 8: return .close(payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil)
            default: continue
            }
        }
    }

    /// Receives the next text message (failing on anything else).
    public func receiveText() throws -> String {
        let message = try self.receive()
        guard case .text(let text) = message else {
            throw RawHTTP.Failure(description: "expected text, got \(message)")
        }
        return text
    }
}

/// A Socket.IO client on a raw WebSocket: enough protocol for tests (connect, emit, ack).
///
/// `@unchecked Sendable` for the same reason as ``RawWebSocket``: used by one thread at a time.
public final class RawSocketIOClient: @unchecked Sendable {
    /// The WebSocket.
    public let ws: RawWebSocket
    /// The Engine.IO session id.
    public let engineID: String

    /// Opens a WebSocket session at `/socket.io/`.
    public init(port: Int, path: String = "/socket.io/", query: String = "", headers: [(String, String)] = []) throws {
        self.ws = try RawWebSocket(port: port, path: "\(path)?EIO=4&transport=websocket\(query)", headers: headers)
        let open = try self.ws.receiveText()
        guard open.hasPrefix("0{"), let sid = open.split(separator: "\"").dropFirst(3).first else {
            throw RawHTTP.Failure(description: "no open packet: \(open)")
        }
        self.engineID = String(sid)
    }

    /// Connects to a namespace; returns the server's answer (`40{"sid":…}` or `44{…}`).
    public func connect(namespace: String = "/", auth: String? = nil) throws -> String {
        let prefix = namespace == "/" ? "" : namespace + ","
        try self.ws.send("40" + prefix + (auth ?? ""))
        return try self.ws.receiveText()
    }

    /// Sends a raw Socket.IO packet (without the Engine.IO `4`).
    public func send(_ packet: String) throws { try self.ws.send("4" + packet) }

    /// Receives the next Socket.IO text packet (without the Engine.IO `4`).
    public func receive() throws -> String {
        let text = try self.ws.receiveText()
        guard text.hasPrefix("4") else { throw RawHTTP.Failure(description: "not a message: \(text)") }
        return String(text.dropFirst())
    }
}
