import EngineIO
import EngineIOCore
import Foundation
import NIOCore
import TestSupport
import Testing

/// The request limits, over real loopback connections (issue 16): each attack is answered with
/// its status at once (not after the bytes it announces), and another client is served meanwhile.
@Suite("HTTP request limits", .timeLimit(.minutes(1)))
struct RequestLimitTests {
    /// A polling session on the echo endpoint: its request path.
    private func session(_ port: Int) throws -> String {
        let handshake = try RawHTTP.request(port: port, "GET", handshakePath)
        let id = try #require(sid(of: handshake.body))
        return "\(handshakePath)&sid=\(id)"
    }

    /// A client that is served: a message posted to a new session comes back on its poll.
    private func assertServed(_ port: Int) throws {
        let path = try self.session(port)
        #expect(try RawHTTP.request(port: port, "POST", path, body: "4served").body == "ok")
        #expect(try RawHTTP.request(port: port, "GET", path).body == "4served")
    }

    private func post(_ path: String, _ headers: String) -> String {
        "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(headers)\r\n"
    }

    @Test func bodiesDeclaredOverTheLimitAreRefusedFromTheHead() async throws {
        try await withServer([endpoint()]) { port in
            try await blocking {
                for length in ["10000000000", "1000001", "999999999999999999"] {
                    let path = try self.session(port)
                    let connection = try RawConnection(port: port)
                    // The head alone: the answer must not wait for the body.
                    connection.send(self.post(path, "Content-Length: \(length)\r\n"))
                    let answer = try connection.response()
                    #expect(answer.status == 413, "Content-Length \(length)")
                    #expect(answer.header("connection") == "close")
                    #expect(connection.isClosedByServer())
                    // As for a body that grows too large: the session is closed.
                    #expect(try RawHTTP.request(port: port, "GET", path).status == 400)
                }
                // A length too long to be a number at all is NIO's parser's to refuse (400).
                let unparsable = try RawConnection(port: port)
                unparsable.send(self.post(try self.session(port), "Content-Length: 99999999999999999999999\r\n"))
                #expect(try unparsable.response().status == 400)
                // A chunked body declaring a chunk over the limit: refused at the size line.
                let path = try self.session(port)
                let chunked = try RawConnection(port: port)
                chunked.send(self.post(path, "Transfer-Encoding: chunked\r\n") + "7FFFFFFF\r\n")
                #expect(try chunked.response().status == 413)
                #expect(chunked.isClosedByServer())
                #expect(try RawHTTP.request(port: port, "GET", path).status == 400)
                try self.assertServed(port)
            }
        }
    }

    @Test func chunkExtensionsOverSixteenKiBAreRefused() async throws {
        try await withServer([endpoint()]) { port in
            try await blocking {
                let path = try self.session(port)
                let connection = try RawConnection(port: port)
                connection.send(self.post(path, "Transfer-Encoding: chunked\r\n") + "1;e=")
                // 20 KiB of a (2 MiB) extension: the answer comes without its end.
                connection.send(String(repeating: "x", count: 20_000))
                #expect(try connection.response().status == 413)
                #expect(connection.isClosedByServer())
                // Within the limit, a chunked POST is served as any other.
                let fine = try RawConnection(port: port)
                fine.send(self.post(path, "Transfer-Encoding: chunked\r\n") + "3;a=b\r\n4hi\r\n0\r\n\r\n")
                _ = fine
                try self.assertServed(port)
            }
        }
    }

    @Test func aChunkedPostDeliversItsPackets() async throws {
        try await withServer([endpoint()]) { port in
            try await blocking {
                let path = try self.session(port)
                let connection = try RawConnection(port: port)
                connection.send(
                    self.post(path, "Transfer-Encoding: chunked\r\n") + "3;a=b\r\n4hi\r\n3\r\n\u{1E}4x\r\n0\r\n\r\n"
                )
                #expect(try connection.response().body == "ok")
                #expect(try RawHTTP.request(port: port, "GET", path).body == "4hi\u{1E}4x")
            }
        }
    }

    @Test func requestsThatFailAnywayAreAnsweredBeforeTheirBody() async throws {
        try await withServer([endpoint()]) { port in
            try await blocking {
                // No sid: a handshake with the wrong method, whatever the body.
                let noSid = try RawConnection(port: port)
                noSid.send(self.post(handshakePath, "Content-Length: 500\r\n"))
                let answer = try noSid.response()
                #expect(answer.status == 400 && answer.body.contains("\"code\":2"))
                #expect(noSid.isClosedByServer())
                // An unknown sid.
                let unknown = try RawConnection(port: port)
                unknown.send(self.post(handshakePath + "&sid=nope", "Content-Length: 500\r\n"))
                #expect(try unknown.response().status == 400)
                // Bodiless requests are still answered in turn on a kept-alive connection.
                let keep = try RawConnection(port: port)
                keep.send(
                    "POST \(handshakePath) HTTP/1.1\r\nHost: a\r\n\r\nGET \(handshakePath) HTTP/1.1\r\nHost: a\r\n\r\n"
                )
                #expect(try keep.response().status == 400)
                #expect(try keep.response().body.hasPrefix("0{"))
                try self.assertServed(port)
            }
        }
    }

    @Test func aStalledBodyIsAnsweredWithTimeoutAndItsSessionLives() async throws {
        try await withServer([endpoint()]) { configuration in
            configuration.requestBodyTimeout = .milliseconds(300)
        } _: { port in
            try await blocking {
                let path = try self.session(port)
                for framing in ["Content-Length: 100\r\n", "Transfer-Encoding: chunked\r\n"] {
                    let connection = try RawConnection(port: port)
                    let started = Date()
                    connection.send(self.post(path, framing) + (framing.hasPrefix("Content") ? "4part" : "64\r\n4part"))
                    let answer = try connection.response()
                    let waited = Date().timeIntervalSince(started)
                    #expect(answer.status == 408, "\(framing)")
                    #expect(waited >= 0.3 && waited < 3, "answered after \(waited) s")
                    #expect(connection.isClosedByServer())
                }
                // The POST never took effect: the session still works.
                #expect(try RawHTTP.request(port: port, "POST", path, body: "4after").body == "ok")
                #expect(try RawHTTP.request(port: port, "GET", path).body == "4after")
            }
        }
    }

    @Test func slowUploadsTogetherAreBoundedByTheBudget() async throws {
        try await withServer([endpoint()]) { configuration in
            configuration.maxBufferedRequestBodyBytes = 100_000
        } _: { port in
            try await blocking {
                // Two uploads of 40 000 bytes each (of 60 000 announced) hold 80 000 bytes.
                var held: [(RawConnection, String)] = []
                for _ in 0..<2 {
                    let path = try self.session(port)
                    let connection = try RawConnection(port: port)
                    connection.send(
                        self.post(path, "Content-Length: 60000\r\n") + "4" + String(repeating: "a", count: 39_999)
                    )
                    held.append((connection, path))
                }
                // Let the server read them: a third session's poll answers after they were read.
                try self.assertServed(port)
                // A third that would take the total past 100 000 is refused.
                let path = try self.session(port)
                let third = try RawConnection(port: port)
                third.send(self.post(path, "Content-Length: 60000\r\n") + "4" + String(repeating: "b", count: 39_999))
                #expect(try third.response().status == 503)
                // The two held ones finish normally, and give their bytes back.
                for (connection, path) in held {
                    connection.send(String(repeating: "a", count: 20_000))
                    #expect(try connection.response().body == "ok")
                    #expect(try RawHTTP.request(port: port, "GET", path).body.count == 60_000)
                }
                let again = try RawConnection(port: port)
                again.send(self.post(path, "Content-Length: 60000\r\n") + "4" + String(repeating: "c", count: 59_999))
                #expect(try again.response().body == "ok")
            }
        }
    }

    @Test func headsOverTheLimitAreRefusedWith431() async throws {
        try await withServer([endpoint()]) { configuration in
            configuration.maxRequestHeadSize = 4096
        } _: { port in
            try await blocking {
                // First requests (fast path, then NIO's codec) and a later one on a kept-alive
                // connection (HTTPSimpleCodec, then NIO's): both refuse.
                for first in [true, false] {
                    let connection = try RawConnection(port: port)
                    if !first {
                        connection.send("GET \(handshakePath) HTTP/1.1\r\nHost: a\r\n\r\n")
                        #expect(try connection.response().status == 200)
                    }
                    connection.send("GET \(handshakePath) HTTP/1.1\r\nX: \(String(repeating: "a", count: 5000))\r\n")
                    #expect(try connection.response().status == 431, "first request: \(first)")
                    #expect(connection.isClosedByServer())
                }
                // A head within the limit (3 KiB) is served.
                let fine = try RawHTTP.request(
                    port: port,
                    "GET",
                    handshakePath,
                    headers: [("X", String(repeating: "a", count: 3000))]
                )
                #expect(fine.status == 200)
            }
        }
    }

    @Test func theDefaultHeadLimitIsNodes() async throws {
        #expect(HTTPServer.Configuration().maxRequestHeadSize == 16_384)
        try await withServer([endpoint()]) { port in
            try await blocking {
                let big = try RawConnection(port: port)
                big.send("GET / HTTP/1.1\r\nX: \(String(repeating: "a", count: 17_000))\r\n\r\n")
                #expect(try big.response().status == 431)
                let within = try RawHTTP.request(
                    port: port,
                    "GET",
                    handshakePath,
                    headers: [("X", String(repeating: "a", count: 15_000))]
                )
                #expect(within.status == 200)
            }
        }
    }
}
