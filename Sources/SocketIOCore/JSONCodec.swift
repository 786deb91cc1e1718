public import NIOCore

/// Why JSON text could not be parsed.
public struct JSONParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The byte offset of the problem.
    public var offset: Int
    /// What was wrong.
    public var reason: String

    /// A one-line description.
    public var description: String { "invalid JSON at byte \(self.offset): \(self.reason)" }
}

/// A strict JSON parser (RFC 8259) that keeps key order and number text, with a nesting limit.
public struct JSONParser {
    /// The deepest nesting of arrays and objects accepted. 128 is far beyond any real event payload
    /// and keeps recursion bounded on hostile input.
    public static let maxDepth = 128

    /// The text, borrowed for the duration of one `parse` call only.
    private let bytes: UnsafeBufferPointer<UInt8>
    /// Whether `bytes` is known to be valid UTF-8 (it came from a `String`), so that strings are
    /// made without validating them again.
    private let validUTF8: Bool
    private var index = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>, validUTF8: Bool) {
        self.bytes = bytes
        self.validUTF8 = validUTF8
    }

    /// Parses one JSON value that spans all of `bytes` (surrounding whitespace allowed).
    ///
    /// - Parameter bytes: UTF-8 JSON text.
    /// - Returns: the value.
    /// - Throws: ``JSONParseError``.
    public static func parse<Bytes: Collection>(_ bytes: Bytes) throws(JSONParseError) -> JSONValue
    where Bytes.Element == UInt8 {
        let result =
            bytes.withContiguousStorageIfAvailable { Self.parse(buffer: $0, validUTF8: false) }
            ?? Array(bytes).withUnsafeBufferPointer { Self.parse(buffer: $0, validUTF8: false) }
        return try result.get()
    }

    /// Parses JSON text.
    ///
    /// - Parameter text: the JSON text.
    /// - Returns: the value.
    /// - Throws: ``JSONParseError``.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        var text = text
        return try text.withUTF8 { Self.parse(buffer: $0, validUTF8: true) }.get()
    }

    /// Parses the JSON text in `buffer`, which must not escape the call; `validUTF8` says the
    /// bytes are known to be valid UTF-8 (the contents of a `String`).
    package static func parse(
        buffer: UnsafeBufferPointer<UInt8>,
        validUTF8: Bool
    ) -> Result<JSONValue, JSONParseError> {
        var parser = JSONParser(buffer, validUTF8: validUTF8)
        parser.skipWhitespace()
        let value: JSONValue
        do {
            value = try parser.parseValue(depth: 0)
        } catch {
            return .failure(error)
        }
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { return .failure(parser.error("trailing characters")) }
        return .success(value)
    }

    private func makeString(_ slice: UnsafeBufferPointer<UInt8>) -> String? {
        if self.validUTF8 { return String(decoding: slice, as: UTF8.self) }
        return String(validating: slice, as: UTF8.self)
    }

    private func error(_ reason: String) -> JSONParseError {
        JSONParseError(offset: self.index, reason: reason)
    }

    private mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x09, 0x0A, 0x0D: self.index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard self.index < self.bytes.count else { throw self.error("unexpected end") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"): return try self.parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try self.parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try self.parseString())
        case UInt8(ascii: "t"): return try self.literal("true", .bool(true))
        case UInt8(ascii: "f"): return try self.literal("false", .bool(false))
        case UInt8(ascii: "n"): return try self.literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try self.parseNumber())
        default: throw self.error("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let count = word.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw self.error("unexpected end") }
        let matches = word.withUTF8Buffer { expected in
            (0..<count).allSatisfy { self.bytes[self.index + $0] == expected[$0] }
        }
        guard matches else { throw self.error("invalid literal") }
        self.index += count
        return value
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = self.index
        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        if self.peek() == UInt8(ascii: "-") { self.index += 1 }
        guard let first = self.peek(), isDigit(first) else { throw self.error("invalid number") }
        self.index += 1
        if first != UInt8(ascii: "0") {
            while let c = self.peek(), isDigit(c) { self.index += 1 }
        }
        if self.peek() == UInt8(ascii: ".") {
            self.index += 1
            guard let c = self.peek(), isDigit(c) else { throw self.error("invalid fraction") }
            while let c = self.peek(), isDigit(c) { self.index += 1 }
        }
        if let e = self.peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            self.index += 1
            if let s = self.peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { self.index += 1 }
            guard let c = self.peek(), isDigit(c) else { throw self.error("invalid exponent") }
            while let c = self.peek(), isDigit(c) { self.index += 1 }
        }
        return JSONNumber(
            validated: String(decoding: UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self)
        )
    }

    private func peek() -> UInt8? {
        self.index < self.bytes.count ? self.bytes[self.index] : nil
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        self.index += 1  // opening quote
        var out: [UInt8] = []
        let start = self.index
        // Fast path: no escapes. Whole words without a quote, backslash or control byte are
        // skipped eight bytes at a time; the byte loop below finds the exact position.
        if let base = self.bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            while self.index + 8 <= self.bytes.count,
                !JSONValue.hasSpecialByte(raw.loadUnaligned(fromByteOffset: self.index, as: UInt64.self))
            {
                self.index += 8
            }
        }
        while self.index < self.bytes.count {
            let c = self.bytes[self.index]
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: self.bytes[start..<self.index])
                self.index += 1
                guard let s = self.makeString(slice) else { throw self.error("invalid UTF-8") }
                return s
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { break }
            self.index += 1
        }
        out.append(contentsOf: self.bytes[start..<self.index])
        while self.index < self.bytes.count {
            let c = self.bytes[self.index]
            switch c {
            case UInt8(ascii: "\""):
                self.index += 1
                guard let s = out.withUnsafeBufferPointer({ self.makeString($0) }) else {
                    throw self.error("invalid UTF-8")
                }
                return s
            case UInt8(ascii: "\\"):
                self.index += 1
                guard let e = self.peek() else { throw self.error("unexpected end") }
                self.index += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try self.hex4()
                    if (0xD800...0xDBFF).contains(scalar), self.peek() == UInt8(ascii: "\\"),
                        self.index + 1 < self.bytes.count, self.bytes[self.index + 1] == UInt8(ascii: "u")
                    {
                        let save = self.index
                        self.index += 2
                        let low = try self.hex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            self.index = save
                        }
                    }
                    // A lone surrogate cannot be a Swift string: it becomes U+FFFD.
                    let unicode = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    UTF8.encode(unicode) { out.append($0) }
                default:
                    throw self.error("invalid escape")
                }
            default:
                guard c >= 0x20 else { throw self.error("control character in string") }
                out.append(c)
                self.index += 1
            }
        }
        throw self.error("unterminated string")
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = self.bytes[self.index]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw self.error("invalid \\u escape")
            }
            v = v << 4 | d
            self.index += 1
        }
        return v
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= Self.maxDepth else { throw self.error("nesting too deep") }
        self.index += 1
        var items: [JSONValue] = []
        self.skipWhitespace()
        if self.peek() == UInt8(ascii: "]") {
            self.index += 1
            return .array(items)
        }
        // Event payloads are short arrays (name and a few arguments): one allocation, not two.
        items.reserveCapacity(4)
        while true {
            self.skipWhitespace()
            items.append(try self.parseValue(depth: depth))
            self.skipWhitespace()
            switch self.peek() {
            case UInt8(ascii: ","): self.index += 1
            case UInt8(ascii: "]"):
                self.index += 1
                return .array(items)
            default: throw self.error("expected , or ]")
            }
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= Self.maxDepth else { throw self.error("nesting too deep") }
        self.index += 1
        var object = JSONObject()
        self.skipWhitespace()
        if self.peek() == UInt8(ascii: "}") {
            self.index += 1
            return .object(object)
        }
        while true {
            self.skipWhitespace()
            guard self.peek() == UInt8(ascii: "\"") else { throw self.error("expected a key") }
            let key = try self.parseString()
            self.skipWhitespace()
            guard self.peek() == UInt8(ascii: ":") else { throw self.error("expected :") }
            self.index += 1
            self.skipWhitespace()
            object[key] = try self.parseValue(depth: depth)
            self.skipWhitespace()
            switch self.peek() {
            case UInt8(ascii: ","): self.index += 1
            case UInt8(ascii: "}"):
                self.index += 1
                return .object(object)
            default: throw self.error("expected , or }")
            }
        }
    }
}

extension JSONValue {
    /// Writes the value as compact JSON, the way `JSON.stringify` does (no spaces, keys in order,
    /// only `"`, `\` and control characters escaped). Binary values are written through
    /// `binary`, which receives each buffer in depth-first order (Socket.IO writes placeholders).
    ///
    /// - Parameters:
    ///   - buffer: the buffer to append to.
    ///   - binary: writes a binary value; by default binary values are written as `null`.
    public func write(
        into buffer: inout ByteBuffer,
        binary: (ByteBuffer, inout ByteBuffer) -> Void = { _, b in
            b.writeStaticString("null")
        }
    ) {
        switch self {
        case .null: buffer.writeStaticString("null")
        case .bool(true): buffer.writeStaticString("true")
        case .bool(false): buffer.writeStaticString("false")
        case .number(let n): buffer.writeString(n.text)
        case .string(let s): Self.writeString(s, into: &buffer)
        case .binary(let bytes): binary(bytes, &buffer)
        case .array(let items):
            buffer.writeInteger(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                item.write(into: &buffer, binary: binary)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let object):
            buffer.writeInteger(UInt8(ascii: "{"))
            for (i, entry) in object.entries.enumerated() {
                if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                Self.writeString(entry.key, into: &buffer)
                buffer.writeInteger(UInt8(ascii: ":"))
                entry.value.write(into: &buffer, binary: binary)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        }
    }

    /// The value as compact JSON text (binary as `null`).
    public var jsonText: String {
        var buffer = ByteBuffer()
        self.write(into: &buffer)
        return String(buffer: buffer)
    }

    /// Whether any of the eight bytes of `w` is a control character, `"` or `\\` (SWAR: each
    /// test is exact for the word as a whole, non-zero when, and only when, some byte matches).
    @inline(__always)
    static func hasSpecialByte(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let control = (w &- ones &* 0x20) & ~w & highs
        let quote = ((w ^ (ones &* 0x22)) &- ones) & ~(w ^ (ones &* 0x22)) & highs
        let backslash = ((w ^ (ones &* 0x5C)) &- ones) & ~(w ^ (ones &* 0x5C)) & highs
        return control | quote | backslash != 0
    }

    /// Whether any byte is a control character, `"` or `\\`: eight bytes at a time (SWAR), then
    /// byte by byte for the tail.
    static func needsEscaping(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            while i + 8 <= bytes.count {
                if Self.hasSpecialByte(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { return true }
                i += 8
            }
        }
        while i < bytes.count {
            let c = bytes[i]
            if c < 0x20 || c == 0x22 || c == 0x5C { return true }
            i += 1
        }
        return false
    }

    static func writeString(_ s: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        let utf8 = s.utf8
        // Fast path: nothing to escape, checked over the contiguous UTF-8 and copied in one go.
        let copied = utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard !Self.needsEscaping(bytes) else { return false }
            buffer.writeBytes(bytes)
            return true
        }
        if copied == true {
            // Done.
        } else if !utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            buffer.writeString(s)
        } else {
            for c in utf8 {
                switch c {
                case 0x22: buffer.writeStaticString("\\\"")
                case 0x5C: buffer.writeStaticString("\\\\")
                case 0x08: buffer.writeStaticString("\\b")
                case 0x0C: buffer.writeStaticString("\\f")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                case 0..<0x20:
                    buffer.writeStaticString("\\u00")
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    buffer.writeInteger(hex[Int(c >> 4)])
                    buffer.writeInteger(hex[Int(c & 15)])
                default: buffer.writeInteger(c)
                }
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }
}
