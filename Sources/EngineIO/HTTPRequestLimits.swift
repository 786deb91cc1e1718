import NIOCore
import NIOHTTP1
import Synchronization

/// The size limits every request on a connection is held to, whichever HTTP codec reads it
/// (``HTTPSimpleCodec`` or NIO's).
struct HTTPRequestLimits: Sendable {
    /// The longest request head, in bytes (see `HTTPServer.Configuration.maxRequestHeadSize`).
    var maxHeadSize: Int
    /// The largest body any request may declare or send: the largest `maxPayload` of the
    /// endpoints (bodies outside them are read and dropped, so they need no more).
    var maxBodySize: Int

    /// Adds NIO's HTTP/1.1 server codec with pipelining assistance (what
    /// `configureHTTPServerPipeline` adds, without its error handler: ``HTTPRequestHandler``
    /// answers parse errors itself), holding heads to ``maxHeadSize``: the decoder counts the
    /// target and header fields, and its buffer (which keeps a head whole until it ends) may
    /// not grow past the limit either, so padding that the decoder does not count (whitespace
    /// around values) is bounded too. Both refusals are answered 431.
    func addNIOCodec(
        to pipeline: ChannelPipeline.SynchronousOperations,
        position: ChannelPipeline.SynchronousOperations.Position = .last
    ) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = self.maxHeadSize
        limits.maxHeaderFieldSize = self.maxHeadSize
        let decoder = HTTPRequestDecoder(
            leftOverBytesStrategy: .dropBytes,
            informationalResponseStrategy: .drop,
            limitConfiguration: limits
        )
        try pipeline.addHandlers(
            [
                HTTPResponseEncoder(),
                ByteToMessageHandler(decoder, maximumBufferSize: self.maxHeadSize),
                HTTPServerPipelineHandler(),
                NIOHTTPResponseHeadersValidator(),
            ],
            position: position
        )
    }
}

/// Why a request was refused while it was being read (by ``HTTPSimpleCodec``, or derived from
/// NIO's errors), with the status it is answered with.
struct HTTPRequestError: Error, Hashable, Sendable {
    /// The answer's status.
    var status: HTTPResponseStatus
    /// What went wrong, for the logs.
    var reason: String

    /// A head over the limit: 431, as Node answers.
    static let headTooLarge = HTTPRequestError(status: .requestHeaderFieldsTooLarge, reason: "request head too large")
    /// A body over the limit, declared or sent: 413.
    static let bodyTooLarge = HTTPRequestError(status: .payloadTooLarge, reason: "request body too large")
    /// A chunk size line (extensions) over 16 KiB: 413, as Node answers (CVE-2024-22019).
    static let chunkLineTooLong = HTTPRequestError(status: .payloadTooLarge, reason: "chunk extensions too long")
    /// A malformed chunked body: 400.
    static let invalidChunkedBody = HTTPRequestError(status: .badRequest, reason: "invalid chunked body")

    /// The error for a chunked body's failure.
    init(_ failure: HTTPChunkedDecoder.Failure) {
        switch failure {
        case .invalid: self = .invalidChunkedBody
        case .lineTooLong: self = .chunkLineTooLong
        case .bodyTooLarge: self = .bodyTooLarge
        case .trailersTooLarge: self = .headTooLarge
        }
    }

    private init(status: HTTPResponseStatus, reason: String) {
        self.status = status
        self.reason = reason
    }

    /// The answer to an error that reached ``HTTPRequestHandler``, if it is one it answers:
    /// NIO's head limits give 431, its other parse errors 400.
    static func answering(_ error: any Error) -> HTTPRequestError? {
        switch error {
        case let error as HTTPRequestError:
            return error
        case HTTPParserError.headerOverflow, is ByteToMessageDecoderError.PayloadTooLargeError:
            return .headTooLarge
        case is HTTPParserError:
            return HTTPRequestError(status: .badRequest, reason: "unparsable request")
        default:
            return nil
        }
    }
}

/// The bytes that request bodies being received hold, across every connection of a server:
/// bounded, so that many slow uploads together cannot hold more than the limit.
final class RequestBodyBudget: Sendable {
    /// The most bytes bodies may hold together.
    let limit: Int
    private let held = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Takes `count` bytes from the budget; `false` (nothing taken) when they do not fit.
    func reserve(_ count: Int) -> Bool {
        let total = self.held.wrappingAdd(count, ordering: .relaxed).newValue
        guard total <= self.limit else {
            self.held.wrappingSubtract(count, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Gives back `count` bytes taken earlier.
    func release(_ count: Int) {
        guard count > 0 else { return }
        self.held.wrappingSubtract(count, ordering: .relaxed)
    }

    /// The bytes held now.
    var current: Int { self.held.load(ordering: .relaxed) }
}
