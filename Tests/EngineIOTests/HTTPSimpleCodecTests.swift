import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import EngineIO

/// The long-polling HTTP codec against the NIO pieces it replaces: the same request parts in
/// the same order under the same pipelining rule, the same response bytes, the same refusal of
/// headers that may not be sent, and a clean hand-over to NIO's codec.
@Suite struct HTTPSimpleCodecTests {
    /// Records the request parts that reach it.
    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var parts: [String] = []
        var errors: [String] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch Self.unwrapInboundIn(data) {
            case .head(let head): self.parts.append("head \(head.method) \(head.uri)")
            case .body(let body): self.parts.append("body \(String(buffer: body))")
            case .end: self.parts.append("end")
            }
        }

        var errorValues: [any Error] = []

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.errors.append("\(error)")
            self.errorValues.append(error)
        }
    }

    /// Counts the reads the channel is asked for on their way to the socket.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var reads = 0
        func read(context: ChannelHandlerContext) {
            self.reads += 1
            context.read()
        }
    }

    static let limits = HTTPRequestLimits(maxHeadSize: 16_384, maxBodySize: 1000)

    private func channel() throws -> (EmbeddedChannel, Recorder, ReadCounter) {
        let recorder = Recorder()
        let counter = ReadCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(HTTPSimpleCodec(limits: Self.limits))
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, recorder, counter)
    }

    private func respond(_ channel: EmbeddedChannel, _ body: String = "ok") throws {
        let head = HTTPResponseHead(
            version: .http1_1,
            status: .ok,
            headers: ["Content-Type": "text/plain", "Content-Length": "\(body.utf8.count)"]
        )
        try channel.writeOutbound(HTTPServerResponsePart.head(head))
        try channel.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: body))))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    /// What NIO's encoder writes for `parts`.
    private func nioBytes(_ parts: [HTTPServerResponsePart]) throws -> String {
        let channel = EmbeddedChannel(handler: HTTPResponseEncoder())
        for part in parts { try channel.writeOutbound(part) }
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
        _ = try channel.finish()
        return text
    }

    @Test func pipelinedRequestsWaitForTheResponseBeforeThem() throws {
        let (channel, recorder, counter) = try self.channel()
        try channel.writeInbound(
            ByteBuffer(
                string: "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                    + "OPTIONS /c HTTP/1.1\r\n\r\n"
            )
        )
        #expect(recorder.parts == ["head GET /a", "end"])
        // A request waits: no further reads until the response is out.
        channel.read()
        #expect(counter.reads == 0)
        try self.respond(channel)
        #expect(recorder.parts == ["head GET /a", "end", "head POST /b", "body abc", "end"])
        #expect(counter.reads == 0)
        try self.respond(channel)
        #expect(recorder.parts.suffix(2) == ["head OPTIONS /c", "end"])
        try self.respond(channel)
        // Nothing waits any more: the held read goes through.
        #expect(counter.reads == 1)
        #expect(try self.written(channel).components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        _ = try channel.finish()
    }

    @Test func bodiesAndHeadsSplitAcrossReads() throws {
        let (channel, recorder, _) = try self.channel()
        let request = "POST /socket.io/?EIO=4&sid=x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"
        for byte in request.utf8 { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        #expect(recorder.parts.first == "head POST /socket.io/?EIO=4&sid=x")
        #expect(recorder.parts.dropFirst().dropLast().map { $0.dropFirst(5) }.joined() == "0123456789")
        #expect(recorder.parts.last == "end")
        #expect(recorder.parts.count == 12)
        _ = try channel.finish()
    }

    @Test func responsesAreTheBytesNIOWrites() throws {
        let heads: [HTTPResponseHead] = [
            HTTPResponseHead(
                version: .http1_1,
                status: .ok,
                headers: ["Content-Type": "text/plain; charset=UTF-8", "Content-Length": "2", "X-A": "b\tc"]
            ),
            HTTPResponseHead(version: .http1_1, status: .noContent, headers: ["Content-Length": "0", "Allow": "GET"]),
            HTTPResponseHead(
                version: .http1_1,
                status: .badRequest,
                headers: ["Connection": "close", "Content-Length": "2", "Transfer-Encoding": "chunked"]
            ),
            HTTPResponseHead(
                version: .http1_1,
                status: .custom(code: 599, reasonPhrase: "Odd One"),
                headers: ["content-length": "2"]
            ),
        ]
        for head in heads {
            let parts: [HTTPServerResponsePart] = [
                .head(head), .body(.byteBuffer(ByteBuffer(string: "ok"))), .end(nil),
            ]
            let (channel, _, _) = try self.channel()
            try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
            for part in parts { try channel.writeOutbound(part) }
            var expected = try self.nioBytes(parts)
            if head.status == .noContent { expected = String(expected.dropLast(2)) }  // body bytes NIO passes on
            let ours = try self.written(channel)
            #expect(ours == expected || head.status == .noContent && ours.hasPrefix(expected), "\(head)")
            _ = try channel.finish()
        }
    }

    @Test func headersThatMayNotBeSentAreRefusedAsNIODoes() throws {
        for headers: HTTPHeaders in [["X-A": "b\r\nInjected: yes", "Content-Length": "0"], ["Bad Name": "x"]] {
            let (channel, recorder, _) = try self.channel()
            try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
            let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
            let promise = channel.eventLoop.makePromise(of: Void.self)
            channel.write(HTTPServerResponsePart.head(head), promise: promise)
            #expect(throws: HTTPParserError.invalidHeaderToken) { try promise.futureResult.wait() }
            #expect(recorder.errors == ["\(HTTPParserError.invalidHeaderToken)"])
            let after = channel.eventLoop.makePromise(of: Void.self)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: after)
            #expect(throws: HTTPParserError.invalidHeaderToken) { try after.futureResult.wait() }
            #expect(try self.written(channel) == "")
            _ = try? channel.finish()
        }
    }

    @Test func chunkedBodiesAreReadHereAndTheNextRequestFollows() throws {
        let (channel, recorder, _) = try self.channel()
        let request =
            "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
            + "GET /next HTTP/1.1\r\n\r\n"
        // Byte by byte: the parts are the same whatever the reads.
        for byte in request.utf8 { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        #expect(recorder.parts.first == "head POST /p" && recorder.parts.last == "end")
        let body = recorder.parts.dropFirst().dropLast().map { $0.dropFirst("body ".count) }.joined()
        #expect(body == "abcde")
        try self.respond(channel)
        #expect(recorder.parts.suffix(2) == ["head GET /next", "end"])
        // Still this codec: chunked bodies need no hand-over.
        _ = try channel.pipeline.syncOperations.context(handlerType: HTTPSimpleCodec.self)
        #expect(recorder.errors.isEmpty)
        _ = try? channel.finish()
    }

    @Test(arguments: [
        // A chunk that would take the body past the limit (1000 here): refused at its size line.
        ("3E9\r\n", "413"), ("7FFFFFFF\r\n", "413"), ("FFFFFFFFFFFFFFFFFFFF\r\n", "413"),
        ("200\r\n" + String(repeating: "a", count: 512) + "\r\n200\r\n", "413"),
        // Extensions over 16 KiB: refused once the line passes the limit, without its end.
        ("1;" + String(repeating: "e", count: 20_000), "413"),
        // Malformed.
        ("x\r\n", "400"), ("3\nabc", "400"), ("3\r\nabcX", "400"), ("-1\r\n", "400"), (";e\r\n", "400"),
        ("3 ;e\r\n", "400"),
        // Trailers over the head limit.
        ("0\r\n" + String(repeating: "t", count: 17_000), "431"),
    ])
    func chunkedBodiesOverTheLimitsOrMalformedAreRefused(_ body: String, _ status: String) throws {
        let (channel, recorder, _) = try self.channel()
        try channel.writeInbound(
            ByteBuffer(string: "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        )
        #expect(recorder.errors.count == 1)
        #expect(recorder.errors.first?.contains(status) == true, "\(recorder.errors)")
        #expect(!recorder.parts.contains("end"))
        // Nothing after the refusal is read.
        try channel.writeInbound(ByteBuffer(string: "\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"))
        #expect(recorder.errors.count == 1 && !recorder.parts.contains("head GET /"))
        _ = try? channel.finish()
    }

    @Test func headsOverTheLimitAreRefusedByTheNIOCodecItHandsOverTo() throws {
        let (channel, recorder, _) = try self.channel()
        // A GET with a 20 KiB header: longer than the fast path reads, so NIO's codec (with the
        // 16 KiB limit) gets it and refuses it, however the bytes arrive.
        let head = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"
        for chunk in Array(head.utf8).chunked(into: 1000) { try channel.writeInbound(ByteBuffer(bytes: chunk)) }
        // (The decoder repeats its error for every later read; the request handler closes the
        // connection at the first.)
        #expect(recorder.parts.isEmpty)
        #expect(HTTPRequestError.answering(try #require(recorder.errorValues.first)) == .headTooLarge)
        // Padding the decoder does not count (spaces before a value) is bounded by its buffer.
        let (padded, paddedRecorder, _) = try self.channel()
        try padded.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nX:"))
        for _ in 0..<40 { _ = try? padded.writeInbound(ByteBuffer(string: String(repeating: " ", count: 1000))) }
        #expect(paddedRecorder.parts.isEmpty)
        #expect(HTTPRequestError.answering(try #require(paddedRecorder.errorValues.first)) == .headTooLarge)
        _ = try? channel.finish()
        _ = try? padded.finish()
    }

    @Test func anUnusualRequestHandsTheConnectionToNIOsCodec() throws {
        let (channel, recorder, counter) = try self.channel()
        try channel.writeInbound(
            ByteBuffer(
                string:
                    "GET /a HTTP/1.1\r\n\r\nPUT /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
            )
        )
        channel.read()
        #expect(recorder.parts == ["head GET /a", "end"])
        try self.respond(channel)
        #expect(recorder.parts == ["head GET /a", "end", "head PUT /b", "body abc", "end"])
        #expect(counter.reads == 1)
        #expect(throws: (any Error).self) {
            try channel.pipeline.syncOperations.context(handlerType: HTTPSimpleCodec.self)
        }
        _ = try channel.pipeline.syncOperations.context(handlerType: HTTPServerPipelineHandler.self)
        // The second response goes through NIO's encoder (and past where this codec was).
        try self.respond(channel, "second")
        let text = try self.written(channel)
        #expect(text.hasSuffix("\r\n\r\nsecond") && text.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        // A bad request after the hand-over is NIO's parser's to refuse.
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"))
        #expect(recorder.errors.count == 1, "\(recorder.errors)")
        _ = try? channel.finish()
    }
}

extension Array {
    /// The array in pieces of at most `size` elements.
    fileprivate func chunked(into size: Int) -> [[Element]] {
        stride(from: 0, to: self.count, by: size).map { Array(self[$0..<Swift.min($0 + size, self.count)]) }
    }
}
