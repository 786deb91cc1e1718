public import Logging

/// A log handler that turns log messages into an async sequence, so tests can wait for a server
/// event ("long-poll held", "session closed") instead of sleeping.
public struct LogEvents: LogHandler {
    /// The messages, as they are logged.
    public let messages: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation

    /// All levels are captured.
    public var logLevel: Logger.Level = .trace
    /// Metadata is ignored.
    public var metadata: Logger.Metadata = [:]

    /// Creates the handler and its stream.
    public init() {
        (self.messages, self.continuation) = AsyncStream.makeStream(of: String.self)
    }

    /// A logger that writes to this handler.
    public var logger: Logger {
        let handler = self
        return Logger(label: "test") { _ in handler }
    }

    /// Metadata is ignored.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    /// Forwards the message text.
    public func log(event: LogEvent) {
        self.continuation.yield(event.message.description)
    }

    /// Waits for the first message equal to `text`.
    ///
    /// - Parameter text: the message.
    /// - Returns: `true` once seen, `false` if the stream ended first.
    public func next(_ text: String) async -> Bool {
        for await message in self.messages where message == text { return true }
        return false
    }
}
