package import NIOCore

/// The chunked transfer coding of a request body (RFC 9112 §7.1), read incrementally and with
/// limits enforced while the bytes arrive: a chunk whose declared size would take the body past
/// `maxBodySize` is refused at its size line (before any of its data), and so is a size line or
/// a trailer section longer than its limit, without buffering either.
///
/// A value type with no I/O: push bytes with ``next(from:)`` until it returns `nil` (needs more)
/// or ``Event/end``. It accepts a strict subset of what NIO's parser accepts (the tests compare
/// the two): hexadecimal sizes, extensions right after them (`;name`, `;name=token` or
/// `;name="quoted"`, repeated, no whitespace), CRLF line endings only, and trailer fields
/// (`name: value` lines), which are skipped.
package struct HTTPChunkedDecoder: Sendable {
    /// What the body yields next.
    package enum Event: Equatable, Sendable {
        /// Body bytes (a slice of the input).
        case data(ByteBuffer)
        /// The last chunk and the trailer section have been read.
        case end
    }

    /// Why a chunked body is refused.
    package enum Failure: Error, Equatable, Sendable {
        /// Not the chunked coding (a bad size, a missing CRLF, a control character).
        case invalid
        /// A chunk size line (size and extensions) longer than ``maxLineLength``: answered 413,
        /// as Node does for extensions over 16 KiB (CVE-2024-22019).
        case lineTooLong
        /// The declared chunk sizes add up to more than `maxBodySize`: answered 413.
        case bodyTooLarge
        /// The trailer section is longer than `maxTrailerSize`: answered 431.
        case trailersTooLarge
    }

    private enum State: Sendable {
        /// Reading a size line: the size so far, its digits, where in the extensions (after the
        /// digits) it is, and the line's length so far.
        case size(value: Int, digits: Int, ext: Extension, length: Int)
        /// The size line's CR was read; its LF must follow.
        case sizeLF(value: Int)
        /// Inside a chunk's data.
        case data(remaining: Int)
        /// After a chunk's data: its CR, then its LF.
        case dataCR
        case dataLF
        /// Reading the trailer section: where in its current line, and the section's length so far.
        case trailer(Trailer, total: Int)
        case done
    }

    /// The longest size line (with its extensions), in bytes. Default 16 KiB, Node's bound.
    package let maxLineLength: Int
    /// The most bytes the chunks may declare together.
    package let maxBodySize: Int
    /// The longest trailer section.
    package let maxTrailerSize: Int
    /// Where a size line's reading is within its extensions (RFC 9112 §7.1.1).
    private enum Extension: Sendable {
        /// Still in the size (no `;` yet).
        case none
        /// Right after a `;`: a name must start.
        case nameStart
        /// In a name.
        case name
        /// Right after `=`: a token or a quoted string must start.
        case valueStart
        /// In a token value.
        case token
        /// In a quoted value, after a backslash in one, after its closing quote.
        case quoted
        case quotedEscape
        case quotedEnd
    }

    /// Where the trailer section's reading is within a line.
    private enum Trailer: Sendable {
        /// At a line's start: a field name, or the CR of the empty line that ends the body.
        case lineStart
        /// In a field name; in its value; after the line's CR (`last`: the empty line's).
        case name
        case value
        case lineFeed(last: Bool)
    }

    private var state = State.size(value: 0, digits: 0, ext: .none, length: 0)
    private var bodySize = 0

    /// Creates a decoder for one body.
    ///
    /// - Parameters:
    ///   - maxBodySize: the most bytes the chunks may declare together.
    ///   - maxLineLength: the longest chunk size line.
    ///   - maxTrailerSize: the longest trailer section.
    package init(maxBodySize: Int, maxLineLength: Int = 16_384, maxTrailerSize: Int = 16_384) {
        self.maxBodySize = maxBodySize
        self.maxLineLength = maxLineLength
        self.maxTrailerSize = maxTrailerSize
    }

    /// Whether the body has ended.
    package var isDone: Bool {
        if case .done = self.state { return true }
        return false
    }

    /// Reads from `buffer` (moving its reader index past what it used) up to the next event.
    ///
    /// - Parameter buffer: bytes of the body; what follows the body's end stays in it.
    /// - Returns: the next event, or `nil` when `buffer` ran out first.
    /// - Throws: ``Failure``, as soon as the bytes read show it.
    package mutating func next(from buffer: inout ByteBuffer) throws(Failure) -> Event? {
        while buffer.readableBytes > 0 {
            switch self.state {
            case .data(let remaining):
                let count = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                self.state = count == remaining ? .dataCR : .data(remaining: remaining - count)
                return .data(slice)
            case .done:
                return .end
            case .size, .sizeLF, .dataCR, .dataLF, .trailer:
                let byte = buffer.readInteger(as: UInt8.self)!
                if let event = try self.step(byte) { return event }
            }
        }
        return self.isDone ? .end : nil
    }

    /// One byte outside chunk data.
    private mutating func step(_ byte: UInt8) throws(Failure) -> Event? {
        switch self.state {
        case .size(let value, let digits, let ext, let length):
            if byte == 0x0D {
                switch ext {
                case .none, .name, .token, .quotedEnd: guard digits > 0 else { throw .invalid }
                case .nameStart, .valueStart, .quoted, .quotedEscape: throw .invalid
                }
                self.state = .sizeLF(value: value)
                return nil
            }
            guard length < self.maxLineLength else { throw .lineTooLong }
            let next: Extension
            switch ext {
            case .none:
                if let digit = Self.hexValue(byte) {
                    // 15 hex digits stay below Int.max; more is refused as too large anyway.
                    guard digits < 15 else { throw .bodyTooLarge }
                    self.state = .size(value: value << 4 | digit, digits: digits + 1, ext: .none, length: length + 1)
                    return nil
                }
                guard digits > 0, byte == UInt8(ascii: ";") else { throw .invalid }
                next = .nameStart
            case .nameStart:
                guard HTTPFastHead.isTokenByte(byte) else { throw .invalid }
                next = .name
            case .name, .token:
                if byte == UInt8(ascii: ";") {
                    next = .nameStart
                } else if ext == .name, byte == UInt8(ascii: "=") {
                    next = .valueStart
                } else {
                    guard HTTPFastHead.isTokenByte(byte) else { throw .invalid }
                    next = ext
                }
            case .valueStart:
                if byte == UInt8(ascii: "\"") {
                    next = .quoted
                } else {
                    guard HTTPFastHead.isTokenByte(byte) else { throw .invalid }
                    next = .token
                }
            case .quoted:
                if byte == UInt8(ascii: "\"") {
                    next = .quotedEnd
                } else if byte == UInt8(ascii: "\\") {
                    next = .quotedEscape
                } else {
                    guard HTTPFastHead.isFieldValueByte(byte) else { throw .invalid }
                    next = .quoted
                }
            case .quotedEscape:
                guard HTTPFastHead.isFieldValueByte(byte) else { throw .invalid }
                next = .quoted
            case .quotedEnd:
                guard byte == UInt8(ascii: ";") else { throw .invalid }
                next = .nameStart
            }
            self.state = .size(value: value, digits: digits, ext: next, length: length + 1)
        case .sizeLF(let value):
            guard byte == 0x0A else { throw .invalid }
            guard value <= self.maxBodySize - self.bodySize else { throw .bodyTooLarge }
            self.bodySize += value
            self.state = value == 0 ? .trailer(.lineStart, total: 0) : .data(remaining: value)
        case .dataCR:
            guard byte == 0x0D else { throw .invalid }
            self.state = .dataLF
        case .dataLF:
            guard byte == 0x0A else { throw .invalid }
            self.state = .size(value: 0, digits: 0, ext: .none, length: 0)
        case .trailer(let phase, let total):
            guard total < self.maxTrailerSize else { throw .trailersTooLarge }
            let next: Trailer
            switch phase {
            case .lineStart:
                if byte == 0x0D {
                    next = .lineFeed(last: true)
                } else {
                    guard HTTPFastHead.isTokenByte(byte) else { throw .invalid }
                    next = .name
                }
            case .name:
                if byte == UInt8(ascii: ":") {
                    next = .value
                } else {
                    guard HTTPFastHead.isTokenByte(byte) else { throw .invalid }
                    next = .name
                }
            case .value:
                if byte == 0x0D {
                    next = .lineFeed(last: false)
                } else {
                    guard HTTPFastHead.isFieldValueByte(byte) else { throw .invalid }
                    next = .value
                }
            case .lineFeed(let last):
                guard byte == 0x0A else { throw .invalid }
                if last {
                    self.state = .done
                    return .end
                }
                next = .lineStart
            }
            self.state = .trailer(next, total: total + 1)
        case .data, .done:
            preconditionFailure("HTTPChunkedDecoder.step in state \(self.state)")
        }
        return nil
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
