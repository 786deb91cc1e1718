public import NIOCore

/// A MessagePack value (the msgpack spec, 2017 revision), as it was on the wire: integers keep
/// their signedness, floats their width, maps their key order and non-string keys, extensions
/// their type and bytes.
public enum MessagePackValue: Hashable, Sendable {
    /// `nil` (`c0`).
    case `nil`
    /// `false` / `true` (`c2` / `c3`).
    case bool(Bool)
    /// A signed integer: every integer that fits an `Int64`.
    case int(Int64)
    /// An unsigned integer above `Int64.max`.
    case uint(UInt64)
    /// A 32-bit float (`ca`).
    case float(Float)
    /// A 64-bit float (`cb`).
    case double(Double)
    /// A UTF-8 string (`a0`–`bf`, `d9`–`db`).
    case string(String)
    /// Binary data (`c4`–`c6`).
    case binary(ByteBuffer)
    /// An array.
    case array([MessagePackValue])
    /// A map, entries in wire order.
    case map([MessagePackPair])
    /// An extension: its type and data (type −1 is the timestamp, see ``timestamp``).
    case ext(type: Int8, data: ByteBuffer)

    /// The map entry for string key `key`, if this is a map that has one.
    public subscript(key: String) -> MessagePackValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.key == .string(key) }?.value
    }

    /// The integer, if this is one that fits an `Int`.
    public var intValue: Int? {
        switch self {
        case .int(let value): return Int(exactly: value)
        case .uint(let value): return Int(exactly: value)
        default: return nil
        }
    }

    /// The string, if this is one.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The timestamp extension (type −1) as seconds and nanoseconds since the Unix epoch, if
    /// this is one (4, 8 or 12 bytes of data, msgpack spec "Timestamp extension type").
    public var timestamp: (seconds: Int64, nanoseconds: UInt32)? {
        guard case .ext(-1, let data) = self else { return nil }
        switch data.readableBytes {
        case 4:
            return (Int64(data.getInteger(at: data.readerIndex, as: UInt32.self)!), 0)
        case 8:
            let word = data.getInteger(at: data.readerIndex, as: UInt64.self)!
            return (Int64(word & 0x3_FFFF_FFFF), UInt32(word >> 34))
        case 12:
            let nanoseconds = data.getInteger(at: data.readerIndex, as: UInt32.self)!
            return (data.getInteger(at: data.readerIndex + 4, as: Int64.self)!, nanoseconds)
        default:
            return nil
        }
    }
}

/// One entry of a MessagePack map.
public struct MessagePackPair: Hashable, Sendable {
    /// The key.
    public var key: MessagePackValue
    /// The value.
    public var value: MessagePackValue

    /// Creates an entry.
    public init(_ key: MessagePackValue, _ value: MessagePackValue) {
        self.key = key
        self.value = value
    }
}

extension MessagePackValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByNilLiteral
{
    /// A string.
    public init(stringLiteral value: String) { self = .string(value) }
    /// A signed integer.
    public init(integerLiteral value: Int64) { self = .int(value) }
    /// A bool.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An array.
    public init(arrayLiteral elements: MessagePackValue...) { self = .array(elements) }
    /// `nil`.
    public init(nilLiteral: ()) { self = .nil }
}
