import EngineIO
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The first-request fast path's head reader against NIO's HTTP parser: whatever it reads must
/// be exactly what NIO reads, and whatever NIO refuses it must not read.
@Suite struct HTTPFastHeadTests {
    /// NIO's reading of `bytes`: the first head, or `nil` when it refuses them or wants more.
    private func nioHead(_ bytes: [UInt8]) -> HTTPRequestHead? {
        self.nioRequest(bytes)?.head
    }

    /// NIO's reading of `bytes`: the first request's head and body length, or `nil` when it
    /// refuses them or the request is incomplete.
    private func nioRequest(_ bytes: [UInt8]) -> (head: HTTPRequestHead, bodyLength: Int)? {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder()))
        defer { _ = try? channel.finish() }
        var head: HTTPRequestHead?
        var bodyLength = 0
        // Bytes after the request may be refused as the start of the next: what came before
        // the error still counts.
        _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let h): head = h
            case .body(let body): bodyLength += body.readableBytes
            case .end: return head.map { ($0, bodyLength) }
            }
        }
        return nil
    }

    private func ours(_ bytes: [UInt8]) -> HTTPFastHead.Outcome {
        HTTPFastHead.read(ByteBuffer(bytes: bytes))
    }

    private func headers(_ head: HTTPRequestHead) -> [String] {
        head.headers.map { "\($0.name)=\($0.value)" }
    }

    private static let handshake = Array(
        ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"
            + "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").utf8
    )

    @Test func aBrowserHandshakeIsReadAsNIOReadsIt() throws {
        guard case .head(let head, let length, .length(0), special: true) = self.ours(Self.handshake) else {
            Issue.record("not read")
            return
        }
        let nio = try #require(self.nioHead(Self.handshake))
        #expect(length == Self.handshake.count)
        #expect(head.method == .GET && head.version == .http1_1)
        #expect(head.uri == nio.uri && self.headers(head) == self.headers(nio))
        #expect(head.headers["sec-websocket-key"] == ["dGhlIHNhbXBsZSBub25jZQ=="])
    }

    @Test func everyPrefixWaitsForMoreAndBytesAfterTheHeadAreNotPartOfIt() {
        for end in 0..<Self.handshake.count {
            guard case .needMore = self.ours(Array(Self.handshake[..<end])) else {
                Issue.record("prefix of \(end) bytes not .needMore")
                return
            }
        }
        guard case .head(_, let length, _, _) = self.ours(Self.handshake + [0x81, 0x82, 1, 2, 3, 4, 5, 6]) else {
            Issue.record("not read with a frame after it")
            return
        }
        #expect(length == Self.handshake.count)
    }

    @Test func pollingRequestsAreReadWithTheirBodyLength() throws {
        let cases: [(String, HTTPMethod, Int, Bool)] = [
            ("POST /socket.io/?EIO=4&sid=x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n4hello", .POST, 6, false),
            ("POST /socket.io/?EIO=4 HTTP/1.1\r\nHost: a\r\n\r\n", .POST, 0, false),
            ("POST / HTTP/1.1\r\ncontent-length:0\r\n\r\n", .POST, 0, false),
            ("OPTIONS /socket.io/ HTTP/1.1\r\nOrigin: http://x\r\n\r\n", .OPTIONS, 0, false),
            ("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: a\r\n\r\n", .GET, 0, false),
            ("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", .GET, 0, true),
            ("POST / HTTP/1.1\r\nUPGRADE: h2c\r\nContent-Length: 1\r\n\r\nx", .POST, 1, true),
        ]
        for (text, method, bodyLength, special) in cases {
            let bytes = Array(text.utf8)
            guard case .head(let head, let length, let ourLength, let ourSpecial) = self.ours(bytes) else {
                Issue.record("not read: \(text.debugDescription)")
                continue
            }
            let nio = try #require(self.nioRequest(bytes), "\(text.debugDescription)")
            #expect(head.method == method && nio.head.method == method)
            #expect(head.uri == nio.head.uri && self.headers(head) == self.headers(nio.head))
            #expect(ourLength == .length(bodyLength) && nio.bodyLength == bodyLength && ourSpecial == special)
            #expect(length + bodyLength == bytes.count)
        }
        // Every prefix of a POST head waits for more.
        let post = Array("POST /socket.io/?EIO=4&sid=x HTTP/1.1\r\nContent-Length: 12\r\n\r\n".utf8)
        for end in 0..<post.count {
            guard case .needMore = self.ours(Array(post[..<end])) else {
                Issue.record("prefix of \(end) bytes not .needMore")
                return
            }
        }
    }

    @Test func chunkedPostsAndLongLengthsAreReadAsNIOReadsThem() throws {
        let cases: [(String, HTTPFastHead.Body)] = [
            ("POST /socket.io/?EIO=4&sid=x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", .chunked),
            ("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n", .chunked),
            ("POST / HTTP/1.1\r\nContent-Length: 10000000000\r\n\r\n", .length(10_000_000_000)),
            ("POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n", .length(999_999_999_999_999_999)),
        ]
        for (text, expected) in cases {
            guard case .head(let head, let length, let body, special: false) = self.ours(Array(text.utf8)) else {
                Issue.record("not read: \(text.debugDescription)")
                continue
            }
            #expect(body == expected)
            #expect(length == text.utf8.count)
            // NIO reads the same head (given a complete request: an empty chunked body, or none).
            let complete = expected == .chunked ? text + "0\r\n\r\n" : text
            let nio = self.nioHead(Array(complete.utf8)) ?? self.nioHeadOnly(Array(text.utf8))
            #expect(nio != nil && head.uri == nio!.uri && self.headers(head) == self.headers(nio!))
        }
    }

    /// NIO's reading of a head whose body has not arrived.
    private func nioHeadOnly(_ bytes: [UInt8]) -> HTTPRequestHead? {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder()))
        defer { _ = try? channel.finish() }
        _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
        guard case .head(let head) = try? channel.readInbound(as: HTTPServerRequestPart.self) else { return nil }
        return head
    }

    @Test func headsLongerThanTheLimitAreLeftToNIO() {
        let head = Array("GET / HTTP/1.1\r\nX: \(String(repeating: "a", count: 100))\r\n\r\n".utf8)
        guard case .head = HTTPFastHead.read(ByteBuffer(bytes: head), limit: head.count) else {
            Issue.record("a head of exactly the limit is not read")
            return
        }
        guard case .notHandled = HTTPFastHead.read(ByteBuffer(bytes: head), limit: head.count - 1) else {
            Issue.record("a head over the limit is read")
            return
        }
        guard case .needMore = HTTPFastHead.read(ByteBuffer(bytes: Array(head.prefix(50))), limit: 64) else {
            Issue.record("a short prefix does not wait")
            return
        }
    }

    @Test func otherRequestsAreLeftToNIO() {
        let cases = [
            "PUT / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            "POSTS / HTTP/1.1\r\n\r\n",
            "OPTION / HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nContent-Length: 3 \r\n\r\nabc",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "OPTIONS / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "HEAD / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /a\"b HTTP/1.1\r\n\r\n",
            "GET /\u{7F} HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n",
            "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
            "get / HTTP/1.1\r\n\r\n",
        ]
        for text in cases {
            guard case .notHandled = self.ours(Array(text.utf8)) else {
                Issue.record("read: \(text.debugDescription)")
                continue
            }
        }
        // Longer than the limit without a blank line: NIO's parser takes it.
        let long = Array("GET / HTTP/1.1\r\nX: ".utf8) + [UInt8](repeating: 0x61, count: HTTPFastHead.maxLength)
        guard case .notHandled = self.ours(long) else {
            Issue.record("an over-long head is not left to NIO")
            return
        }
    }

    /// Random heads built from pieces both readers meet in practice and pieces that break
    /// them, with five bytes after each: every head read here equals NIO's (and the body length
    /// too), and nothing NIO refuses is read.
    @Test func randomHeadsAgreeWithNIO() {
        var generator = SystemRandomNumberGenerator()
        let methods = ["GET", "GET", "POST", "POST", "OPTIONS", "PUT"]
        let targets = [
            "/", "/socket.io/?EIO=4&transport=websocket&sid=ab-_12", "/a%20b?x=[1]&y=~'!*()", "*", "/é", "/a b",
        ]
        let names = [
            "Host", "Upgrade", "connection", "X-Custom_1", "Sec-WebSocket-Key", "a!#$%&'*+-.^_`|~z", "Bad Name", "",
            "Content-Length", "content-LENGTH", "Expect", "Transfer-Encoding",
        ]
        let values = [
            "websocket", "", " padded ", "\tTab\t", "a:b: c", "Ünïcode", "quote\"s", "x\u{7F}y", "ctl\u{02}",
            "multi  space", "keep-alive, Upgrade", "5", "05", "0", "5 ", "+5", "chunked",
        ]
        var read = 0
        var bodies = 0
        for _ in 0..<4000 {
            let method = methods.randomElement(using: &generator)!
            var text = "\(method) \(targets.randomElement(using: &generator)!) HTTP/1.1\r\n"
            for _ in 0..<Int.random(in: 0...5, using: &generator) {
                let separator = [":", ": ", ":  ", " :"].randomElement(using: &generator)!
                text += names.randomElement(using: &generator)! + separator + values.randomElement(using: &generator)!
                text += Int.random(in: 0..<20, using: &generator) == 0 ? "\n" : "\r\n"
            }
            if method == "POST", Bool.random(using: &generator) { text += "Content-Length: 5\r\n" }
            text += "\r\n"
            let headLength = text.utf8.count
            let bytes = Array((text + "abcde").utf8)
            guard case .head(let head, let length, let body, _) = self.ours(bytes) else { continue }
            read += 1
            // A chunked body is checked by HTTPChunkedDecoder's own oracle test: here NIO gets an
            // empty one after the head.
            let bodyLength: Int
            switch body {
            case .length(let n): bodyLength = n
            case .chunked: bodyLength = 0
            }
            if bodyLength > 0 { bodies += 1 }
            let nioBytes = body == .chunked ? Array((text + "0\r\n\r\n").utf8) : bytes
            guard let nio = self.nioRequest(nioBytes) else {
                Issue.record("NIO refuses what was read: \(text.debugDescription)")
                continue
            }
            #expect(length == headLength)
            #expect(bodyLength == nio.bodyLength, "\(text.debugDescription)")
            #expect(head.uri == nio.head.uri, "\(text.debugDescription)")
            #expect(self.headers(head) == self.headers(nio.head), "\(text.debugDescription)")
            #expect(head.method == nio.head.method && head.version == nio.head.version)
        }
        #expect(read > 100 && bodies > 10)
    }
}
