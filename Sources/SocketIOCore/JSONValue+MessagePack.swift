public import MessagePackCore
import NIOCore

/// Socket.IO values and MessagePack, the way Node's cluster adapters see them: a value is
/// written as notepack.io writes the JavaScript value it stands for, and a MessagePack value is
/// read as that JavaScript value would reach a client through socket.io's JSON parser.
extension JSONValue {
    /// The value as notepack.io writes it: numbers that are integral (after JavaScript's
    /// reading of their text) as integers in their smallest form, `-0` as `0`, every other
    /// number as a 64-bit float; objects as maps with string keys in order; binary as `bin`.
    ///
    /// One deliberate difference: an integral number of 2⁶⁴ or more is written as a float
    /// (notepack writes such numbers as the integer 0, losing them).
    public var messagePackValue: MessagePackValue {
        switch self {
        case .null: return .nil
        case .bool(let flag): return .bool(flag)
        case .number(let number): return Self.messagePackNumber(number.text)
        case .string(let text): return .string(text)
        case .binary(let bytes): return .binary(bytes)
        case .array(let items): return .array(items.map(\.messagePackValue))
        case .object(let object):
            return .map(object.entries.map { MessagePackPair(.string($0.key), $0.value.messagePackValue) })
        }
    }

    private static func messagePackNumber(_ text: String) -> MessagePackValue {
        if let integer = Int64(text) { return .int(integer) }
        if let integer = UInt64(text) { return .uint(integer) }
        guard let double = Double(text) else { return .nil }
        if double.isFinite, double == double.rounded(.towardZero) {
            if double == 0 { return .int(0) }
            if double >= -9.223_372_036_854_775_808e18, double < 9.223_372_036_854_775_808e18 {
                return .int(Int64(double))
            }
            if double > 0, double < 1.844_674_407_370_955_161_6e19 { return .uint(UInt64(double)) }
        }
        return .double(double)
    }

    /// The value a MessagePack value stands for, as a client would receive it: integers and
    /// floats as numbers (non-finite floats as `null`, as `JSON.stringify` writes them), `bin`
    /// as binary (an attachment), maps as objects (integer keys as their decimal text, other
    /// non-string keys as their JSON text), the timestamp extension as its ISO 8601 text (what
    /// a `Date` becomes), other extensions as `null`.
    public init(messagePack value: MessagePackValue) {
        switch value {
        case .nil: self = .null
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .number(JSONNumber(validated: String(number)))
        case .uint(let number): self = .number(JSONNumber(validated: String(number)))
        case .float(let number): self = Self.number(Double(number))
        case .double(let number): self = Self.number(number)
        case .string(let text): self = .string(text)
        case .binary(let bytes): self = .binary(bytes)
        case .array(let items): self = .array(items.map(JSONValue.init(messagePack:)))
        case .map(let pairs):
            var object = JSONObject()
            for pair in pairs {
                let key: String
                switch pair.key {
                case .string(let text): key = text
                default: key = JSONValue(messagePack: pair.key).jsonText
                }
                object[key] = JSONValue(messagePack: pair.value)
            }
            self = .object(object)
        case .ext:
            if let (seconds, nanoseconds) = value.timestamp {
                self = .string(Self.isoTimestamp(seconds: seconds, nanoseconds: nanoseconds))
            } else {
                self = .null
            }
        }
    }

    private static func number(_ double: Double) -> JSONValue {
        double.isFinite ? .number(JSONNumber(double)) : .null
    }

    /// `Date.prototype.toJSON`: `YYYY-MM-DDTHH:MM:SS.mmmZ`, in UTC, milliseconds truncated.
    static func isoTimestamp(seconds: Int64, nanoseconds: UInt32) -> String {
        UTCDate(milliseconds: seconds * 1000 + Int64(nanoseconds / 1_000_000)).iso8601
    }
}
