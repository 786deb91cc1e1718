public import NIOCore

/// Why bytes from a Redis server are not RESP.
public struct RESPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was wrong.
    public enum Reason: String, Hashable, Sendable {
        /// A type byte that is not RESP2 or RESP3.
        case unknownType
        /// A length, count or number that does not parse, or a missing CR LF.
        case malformed
        /// A line (simple string, error, number) longer than ``RESPDecoder/Limits/maxLineLength``.
        case lineTooLong
        /// A bulk string longer than ``RESPDecoder/Limits/maxBulkLength``.
        case bulkTooLong
        /// An aggregate with more elements than ``RESPDecoder/Limits/maxElements``.
        case tooManyElements
        /// Aggregates nested deeper than ``RESPDecoder/Limits/maxDepth``.
        case tooDeep
    }

    /// What was wrong.
    public var reason: Reason

    /// A one-line description.
    public var description: String { "invalid RESP: \(self.reason.rawValue)" }
}

/// Reads RESP2 and RESP3 values from bytes as they arrive: ``append(_:)`` bytes, then take
/// values with ``next()`` until it returns `nil`. It resumes where it stopped (a partly read
/// aggregate keeps its elements), so a reply costs time in proportion to its size however it
/// is split, and every limit is enforced from the header, before the bytes it announces.
///
/// RESP3 attributes (`|`) are read and dropped: they annotate the value after them, which is
/// returned alone.
public struct RESPDecoder: Sendable {
    /// Bounds on what one reply may hold.
    public struct Limits: Hashable, Sendable {
        /// The longest bulk string. Default 512 MiB, Redis's own `proto-max-bulk-len`.
        public var maxBulkLength = 512 << 20
        /// The most elements of one aggregate. Default 16 Mi: far above any reply the adapters
        /// read (a `PUBSUB`, a pub/sub message), and it bounds nothing by itself: elements are
        /// only stored as they arrive.
        public var maxElements = 16 << 20
        /// The longest line of a simple string, error or number. Default 64 KiB.
        public var maxLineLength = 64 << 10
        /// The deepest nesting. Default 64.
        public var maxDepth = 64

        /// The defaults.
        public init() {}
    }

    private enum Kind: Sendable {
        case array, map, set, push, attribute
    }

    /// An aggregate being read: what it is, how many elements it still needs, what it has.
    private struct Partial: Sendable {
        var kind: Kind
        var remaining: Int
        var items: [RESPValue]
    }

    /// The limits.
    public let limits: Limits
    private var buffer = ByteBuffer()
    private var stack: [Partial] = []
    private var failed: RESPError?
    /// How many bytes of the current token's line are known to hold no LF: a line arriving in
    /// small pieces is scanned once, not once per piece.
    private var scanned = 0

    /// Creates a decoder.
    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// The bytes received and not yet read into values.
    public var bufferedBytes: Int { self.buffer.readableBytes }

    /// Adds received bytes.
    public mutating func append(_ bytes: ByteBuffer) {
        if self.buffer.readableBytes == 0 {
            self.buffer = bytes
        } else {
            var bytes = bytes
            self.buffer.writeBuffer(&bytes)
        }
    }

    /// The next complete value, or `nil` when the bytes so far end inside one.
    ///
    /// - Throws: ``RESPError``; after an error the decoder stays failed (the stream cannot be
    ///   resynchronised).
    public mutating func next() throws(RESPError) -> RESPValue? {
        if let failed = self.failed { throw failed }
        do {
            return try self.step()
        } catch {
            self.failed = error
            throw error
        }
    }

    private mutating func step() throws(RESPError) -> RESPValue? {
        while true {
            guard let token = try self.token() else {
                self.compact()
                return nil
            }
            let value: RESPValue
            switch token {
            case .value(let scalar):
                value = scalar
            case .aggregate(let kind, let count):
                guard self.stack.count < self.limits.maxDepth else { throw RESPError(reason: .tooDeep) }
                let elements = kind == .map || kind == .attribute ? count * 2 : count
                if elements > 0 {
                    var items: [RESPValue] = []
                    items.reserveCapacity(min(elements, 1024))
                    self.stack.append(Partial(kind: kind, remaining: elements, items: items))
                    continue
                }
                guard let empty = Self.finish(kind, []) else { continue }
                value = empty
            }
            // Hand the value to the aggregates waiting for it, closing those it completes; an
            // attribute that completes is dropped (the value it annotates comes next).
            var completed: RESPValue? = value
            while let element = completed, var top = self.stack.popLast() {
                top.items.append(element)
                top.remaining -= 1
                guard top.remaining == 0 else {
                    self.stack.append(top)
                    completed = nil
                    break
                }
                completed = Self.finish(top.kind, top.items)
                if completed == nil { break }
            }
            if self.stack.isEmpty, let completed { return completed }
        }
    }

    private static func finish(_ kind: Kind, _ items: [RESPValue]) -> RESPValue? {
        switch kind {
        case .array: return .array(items)
        case .set: return .set(items)
        case .push: return .push(items)
        case .map:
            return .map(stride(from: 0, to: items.count, by: 2).map { RESPPair(items[$0], items[$0 + 1]) })
        case .attribute: return nil
        }
    }

    private enum Token {
        case value(RESPValue)
        case aggregate(Kind, Int)
    }

    /// Reads one complete token (a scalar, or an aggregate's header) and consumes it; `nil`
    /// (nothing consumed) when the bytes end inside it.
    private mutating func token() throws(RESPError) -> Token? {
        let start = self.buffer.readerIndex
        guard let type = self.buffer.getInteger(at: start, as: UInt8.self) else { return nil }
        guard let (line, next) = try self.line(from: start + 1) else { return nil }
        func consume(to index: Int) {
            self.buffer.moveReaderIndex(to: index)
            self.scanned = 0
        }
        switch type {
        case UInt8(ascii: "+"):
            consume(to: next)
            return .value(.simpleString(String(decoding: line.readableBytesView, as: UTF8.self)))
        case UInt8(ascii: "-"):
            consume(to: next)
            return .value(.error(String(decoding: line.readableBytesView, as: UTF8.self)))
        case UInt8(ascii: ":"):
            guard let number = Int64(String(decoding: line.readableBytesView, as: UTF8.self)) else {
                throw RESPError(reason: .malformed)
            }
            consume(to: next)
            return .value(.integer(number))
        case UInt8(ascii: "_"):
            guard line.readableBytes == 0 else { throw RESPError(reason: .malformed) }
            consume(to: next)
            return .value(.null)
        case UInt8(ascii: "#"):
            let text = String(decoding: line.readableBytesView, as: UTF8.self)
            guard text == "t" || text == "f" else { throw RESPError(reason: .malformed) }
            consume(to: next)
            return .value(.boolean(text == "t"))
        case UInt8(ascii: ","):
            let text = String(decoding: line.readableBytesView, as: UTF8.self)
            let number: Double?
            switch text {
            case "inf": number = .infinity
            case "-inf": number = -.infinity
            case "nan": number = .nan
            default: number = Double(text)
            }
            guard let number else { throw RESPError(reason: .malformed) }
            consume(to: next)
            return .value(.double(number))
        case UInt8(ascii: "("):
            let text = String(decoding: line.readableBytesView, as: UTF8.self)
            guard !text.isEmpty, text.drop(while: { $0 == "-" || $0 == "+" }).allSatisfy(\.isNumber) else {
                throw RESPError(reason: .malformed)
            }
            consume(to: next)
            return .value(.bigNumber(text))
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            let length = try self.count(line, allowNull: type == UInt8(ascii: "$"))
            guard length >= 0 else {
                consume(to: next)
                return .value(.null)
            }
            guard length <= self.limits.maxBulkLength else { throw RESPError(reason: .bulkTooLong) }
            guard self.buffer.writerIndex - next >= length + 2 else { return nil }
            guard self.buffer.getInteger(at: next + length, as: UInt16.self) == 0x0D0A else {
                throw RESPError(reason: .malformed)
            }
            let bytes = self.buffer.getSlice(at: next, length: length)!
            consume(to: next + length + 2)
            switch type {
            case UInt8(ascii: "$"): return .value(.bulkString(bytes))
            case UInt8(ascii: "!"): return .value(.bulkError(String(decoding: bytes.readableBytesView, as: UTF8.self)))
            default:
                guard length >= 4, bytes.getInteger(at: bytes.readerIndex + 3, as: UInt8.self) == UInt8(ascii: ":")
                else { throw RESPError(reason: .malformed) }
                let format = bytes.getString(at: bytes.readerIndex, length: 3)!
                return .value(
                    .verbatimString(
                        format: format,
                        text: bytes.getSlice(at: bytes.readerIndex + 4, length: length - 4)!
                    )
                )
            }
        case UInt8(ascii: "*"), UInt8(ascii: "%"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "|"):
            let count = try self.count(line, allowNull: type == UInt8(ascii: "*"))
            consume(to: next)
            guard count >= 0 else { return .value(.null) }
            guard count <= self.limits.maxElements else { throw RESPError(reason: .tooManyElements) }
            let kind: Kind
            switch type {
            case UInt8(ascii: "*"): kind = .array
            case UInt8(ascii: "%"): kind = .map
            case UInt8(ascii: "~"): kind = .set
            case UInt8(ascii: ">"): kind = .push
            default: kind = .attribute
            }
            return .aggregate(kind, count)
        default:
            throw RESPError(reason: .unknownType)
        }
    }

    /// The line starting at `index` (without its CR LF) and the index after it, or `nil` when
    /// its CR LF has not arrived.
    private mutating func line(from index: Int) throws(RESPError) -> (ByteBuffer, Int)? {
        let available = self.buffer.writerIndex - index
        let window = min(available, self.limits.maxLineLength + 2)
        guard window > self.scanned,
            let bytes = self.buffer.getSlice(at: index + self.scanned, length: window - self.scanned)
        else { return nil }
        guard let lf = bytes.readableBytesView.firstIndex(of: 0x0A) else {
            self.scanned = window
            if available >= self.limits.maxLineLength + 2 { throw RESPError(reason: .lineTooLong) }
            return nil
        }
        let length = self.scanned + (lf - bytes.readableBytesView.startIndex)
        guard length >= 1, self.buffer.getInteger(at: index + length - 1, as: UInt8.self) == 0x0D else {
            throw RESPError(reason: .malformed)
        }
        return (self.buffer.getSlice(at: index, length: length - 1)!, index + length + 1)
    }

    /// A length or count; `-1` only where RESP2 allows a null.
    private func count(_ line: ByteBuffer, allowNull: Bool) throws(RESPError) -> Int {
        let text = String(decoding: line.readableBytesView, as: UTF8.self)
        guard text.count <= 19, let number = Int(text), number >= -1, number != -1 || allowNull, text.first != "+"
        else { throw RESPError(reason: .malformed) }
        return number
    }

    /// Drops consumed bytes once they are most of the buffer (the tail stays where it is).
    private mutating func compact() {
        if self.buffer.readerIndex > 4096, self.buffer.readerIndex > self.buffer.readableBytes {
            self.buffer.discardReadBytes()
        }
    }
}
