public import NIOCore

/// Why bytes are not one MessagePack value.
public struct MessagePackError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The byte offset of the problem.
    public var offset: Int
    /// What was wrong.
    public var reason: Reason

    /// The kinds of problem.
    public enum Reason: String, Hashable, Sendable {
        /// The bytes end inside a value.
        case truncated
        /// `c1`, the one type byte the spec never uses.
        case invalidType
        /// A string that is not UTF-8.
        case invalidUTF8
        /// Arrays and maps nested deeper than ``MessagePackDecoder/maxDepth``.
        case tooDeep
        /// Bytes after the value.
        case trailingBytes
    }

    /// A one-line description.
    public var description: String { "invalid MessagePack at byte \(self.offset): \(self.reason.rawValue)" }
}

/// Reads one MessagePack value that spans a whole message (a Redis pub/sub payload, a
/// Socket.IO binary frame). Lengths are checked against the bytes at hand before anything is
/// allocated, so a hostile count costs nothing; nesting is bounded.
public enum MessagePackDecoder {
    /// The deepest nesting of arrays and maps accepted (as the JSON parser's limit).
    public static let maxDepth = 128

    /// Decodes the readable bytes of `buffer`, which must hold exactly one value.
    ///
    /// - Throws: ``MessagePackError``.
    public static func decode(_ buffer: ByteBuffer) throws(MessagePackError) -> MessagePackValue {
        var reader = Reader(buffer: buffer)
        let value = try reader.value(depth: 0)
        guard reader.buffer.readableBytes == 0 else { throw reader.error(.trailingBytes) }
        return value
    }

    /// Decodes `bytes`, which must hold exactly one value.
    ///
    /// - Throws: ``MessagePackError``.
    public static func decode(_ bytes: some Sequence<UInt8>) throws(MessagePackError) -> MessagePackValue {
        try Self.decode(ByteBuffer(bytes: bytes))
    }

    private struct Reader {
        var buffer: ByteBuffer
        let start: Int

        init(buffer: ByteBuffer) {
            self.buffer = buffer
            self.start = buffer.readerIndex
        }

        func error(_ reason: MessagePackError.Reason) -> MessagePackError {
            MessagePackError(offset: self.buffer.readerIndex - self.start, reason: reason)
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(MessagePackError) -> T {
            guard let value = self.buffer.readInteger(as: T.self) else { throw self.error(.truncated) }
            return value
        }

        mutating func slice(_ count: Int) throws(MessagePackError) -> ByteBuffer {
            guard count <= self.buffer.readableBytes, let slice = self.buffer.readSlice(length: count) else {
                throw self.error(.truncated)
            }
            return slice
        }

        mutating func string(_ count: Int) throws(MessagePackError) -> String {
            let at = self.buffer.readerIndex
            let bytes = try self.slice(count)
            guard let text = String(validating: bytes.readableBytesView, as: UTF8.self) else {
                throw MessagePackError(offset: at - self.start, reason: .invalidUTF8)
            }
            return text
        }

        /// A count of items that each take at least `minimum` bytes: more than the bytes left
        /// could hold is a truncation, found before any storage is made for them.
        mutating func count(_ count: Int, minimum: Int) throws(MessagePackError) -> Int {
            guard count <= self.buffer.readableBytes / minimum else { throw self.error(.truncated) }
            return count
        }

        mutating func array(_ count: Int, depth: Int) throws(MessagePackError) -> MessagePackValue {
            guard depth < MessagePackDecoder.maxDepth else { throw self.error(.tooDeep) }
            let count = try self.count(count, minimum: 1)
            var items: [MessagePackValue] = []
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try self.value(depth: depth + 1)) }
            return .array(items)
        }

        mutating func map(_ count: Int, depth: Int) throws(MessagePackError) -> MessagePackValue {
            guard depth < MessagePackDecoder.maxDepth else { throw self.error(.tooDeep) }
            let count = try self.count(count, minimum: 2)
            var pairs: [MessagePackPair] = []
            pairs.reserveCapacity(count)
            for _ in 0..<count {
                let key = try self.value(depth: depth + 1)
                pairs.append(MessagePackPair(key, try self.value(depth: depth + 1)))
            }
            return .map(pairs)
        }

        mutating func ext(_ count: Int) throws(MessagePackError) -> MessagePackValue {
            let type = try self.integer(Int8.self)
            return .ext(type: type, data: try self.slice(count))
        }

        mutating func value(depth: Int) throws(MessagePackError) -> MessagePackValue {
            let type = try self.integer(UInt8.self)
            switch type {
            case 0x00...0x7F: return .int(Int64(type))
            case 0x80...0x8F: return try self.map(Int(type & 0x0F), depth: depth)
            case 0x90...0x9F: return try self.array(Int(type & 0x0F), depth: depth)
            case 0xA0...0xBF: return .string(try self.string(Int(type & 0x1F)))
            case 0xC0: return .nil
            case 0xC1: throw MessagePackError(offset: self.buffer.readerIndex - 1 - self.start, reason: .invalidType)
            case 0xC2: return .bool(false)
            case 0xC3: return .bool(true)
            case 0xC4: return .binary(try self.slice(Int(try self.integer(UInt8.self))))
            case 0xC5: return .binary(try self.slice(Int(try self.integer(UInt16.self))))
            case 0xC6: return .binary(try self.slice(Int(try self.integer(UInt32.self))))
            case 0xC7: return try self.ext(Int(try self.integer(UInt8.self)))
            case 0xC8: return try self.ext(Int(try self.integer(UInt16.self)))
            case 0xC9: return try self.ext(Int(try self.integer(UInt32.self)))
            case 0xCA: return .float(Float(bitPattern: try self.integer(UInt32.self)))
            case 0xCB: return .double(Double(bitPattern: try self.integer(UInt64.self)))
            case 0xCC: return .int(Int64(try self.integer(UInt8.self)))
            case 0xCD: return .int(Int64(try self.integer(UInt16.self)))
            case 0xCE: return .int(Int64(try self.integer(UInt32.self)))
            case 0xCF:
                let number = try self.integer(UInt64.self)
                return number <= UInt64(Int64.max) ? .int(Int64(number)) : .uint(number)
            case 0xD0: return .int(Int64(try self.integer(Int8.self)))
            case 0xD1: return .int(Int64(try self.integer(Int16.self)))
            case 0xD2: return .int(Int64(try self.integer(Int32.self)))
            case 0xD3: return .int(try self.integer(Int64.self))
            case 0xD4: return try self.ext(1)
            case 0xD5: return try self.ext(2)
            case 0xD6: return try self.ext(4)
            case 0xD7: return try self.ext(8)
            case 0xD8: return try self.ext(16)
            case 0xD9: return .string(try self.string(Int(try self.integer(UInt8.self))))
            case 0xDA: return .string(try self.string(Int(try self.integer(UInt16.self))))
            case 0xDB: return .string(try self.string(Int(try self.integer(UInt32.self))))
            case 0xDC: return try self.array(Int(try self.integer(UInt16.self)), depth: depth)
            case 0xDD: return try self.array(Int(try self.integer(UInt32.self)), depth: depth)
            case 0xDE: return try self.map(Int(try self.integer(UInt16.self)), depth: depth)
            case 0xDF: return try self.map(Int(try self.integer(UInt32.self)), depth: depth)
            case 0xE0...0xFF: return .int(Int64(Int8(bitPattern: type)))
            default: preconditionFailure("MessagePack type byte \(type) not covered")
            }
        }
    }
}
