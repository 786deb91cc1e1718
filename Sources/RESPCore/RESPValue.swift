public import NIOCore

/// A Redis protocol value: every RESP2 type and the RESP3 ones (redis.io, "Redis
/// serialization protocol specification"). Strings the server sends as bulk stay bytes (channel
/// names and payloads need not be UTF-8).
public enum RESPValue: Hashable, Sendable {
    /// `+OK`: a simple string.
    case simpleString(String)
    /// `-ERR …`: an error reply.
    case error(String)
    /// `:42`: an integer.
    case integer(Int64)
    /// `$3\r\nfoo`: a bulk string.
    case bulkString(ByteBuffer)
    /// `*2…`: an array.
    case array([RESPValue])
    /// RESP2's null bulk string or null array (`$-1`, `*-1`) and RESP3's `_`.
    case null
    /// RESP3 `#t` / `#f`.
    case boolean(Bool)
    /// RESP3 `,1.5` (also `inf`, `-inf`, `nan`).
    case double(Double)
    /// RESP3 `(123…`: an integer of any size, as its decimal text.
    case bigNumber(String)
    /// RESP3 `!`: an error with a bulk payload.
    case bulkError(String)
    /// RESP3 `=`: a string with its three-letter format (`txt`, `mkd`).
    case verbatimString(format: String, text: ByteBuffer)
    /// RESP3 `%`: a map, entries in order.
    case map([RESPPair])
    /// RESP3 `~`: a set, elements in order.
    case set([RESPValue])
    /// RESP3 `>`: out-of-band data (pub/sub messages, invalidations).
    case push([RESPValue])

    /// The text of a simple, bulk or verbatim string, if this is one and it is UTF-8.
    public var string: String? {
        switch self {
        case .simpleString(let text): return text
        case .bulkString(let bytes), .verbatimString(_, let bytes):
            return String(validating: bytes.readableBytesView, as: UTF8.self)
        default: return nil
        }
    }

    /// The bytes of a bulk, simple or verbatim string, if this is one.
    public var bytes: ByteBuffer? {
        switch self {
        case .bulkString(let bytes), .verbatimString(_, let bytes): return bytes
        case .simpleString(let text): return ByteBuffer(string: text)
        default: return nil
        }
    }

    /// The integer, if this is one (or a string holding one, as some replies are).
    public var integer: Int64? {
        switch self {
        case .integer(let number): return number
        case .bigNumber(let text): return Int64(text)
        default: return self.string.flatMap { Int64($0) }
        }
    }

    /// The elements of an array, set or push.
    public var elements: [RESPValue]? {
        switch self {
        case .array(let items), .set(let items), .push(let items): return items
        default: return nil
        }
    }

    /// The message of an error reply, if this is one.
    public var errorMessage: String? {
        switch self {
        case .error(let message), .bulkError(let message): return message
        default: return nil
        }
    }
}

/// One entry of a RESP3 map.
public struct RESPPair: Hashable, Sendable {
    /// The key.
    public var key: RESPValue
    /// The value.
    public var value: RESPValue

    /// Creates an entry.
    public init(_ key: RESPValue, _ value: RESPValue) {
        self.key = key
        self.value = value
    }
}
