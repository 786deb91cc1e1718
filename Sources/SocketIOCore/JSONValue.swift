public import NIOCore

/// A JSON value as Socket.IO carries it: object keys keep their order, numbers keep their exact
/// text, and a value may be binary (a Socket.IO attachment, written on the wire as a
/// `{"_placeholder":true,"num":N}` object).
///
/// Keeping key order and number text lets the server re-emit what a client sent byte for byte,
/// as the reference server does (`JSON.stringify` keeps insertion order).
public enum JSONValue: Hashable, Sendable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number, kept as its JSON text (for example `7`, `-0.5`, `1e3`).
    case number(JSONNumber)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object; keys in order.
    case object(JSONObject)
    /// Binary data (a Socket.IO attachment).
    case binary(ByteBuffer)

    /// Whether this value holds binary data anywhere inside it.
    public var containsBinary: Bool {
        switch self {
        case .binary: return true
        case .array(let items): return items.contains { $0.containsBinary }
        case .object(let object): return object.entries.contains { $0.value.containsBinary }
        case .null, .bool, .number, .string: return false
        }
    }

    /// The string, if this is one.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The number as a `Double`, if this is one.
    public var doubleValue: Double? {
        if case .number(let n) = self { return n.doubleValue }
        return nil
    }

    /// The number as an `Int`, if this is an integral number in range.
    public var intValue: Int? {
        if case .number(let n) = self { return n.intValue }
        return nil
    }

    /// The bool, if this is one.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The object, if this is one.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The bytes, if this is binary.
    public var binaryValue: ByteBuffer? {
        if case .binary(let b) = self { return b }
        return nil
    }

    /// The value of `key`, if this is an object that has it.
    public subscript(key: String) -> JSONValue? {
        self.objectValue?[key]
    }
}

/// A JSON number, kept as its validated text.
public struct JSONNumber: Hashable, Sendable, CustomStringConvertible {
    /// The number's JSON text.
    public let text: String

    /// Wraps JSON number text that the parser has validated.
    init(validated text: String) {
        self.text = text
    }

    /// An integer.
    public init(_ value: Int) {
        self.text = String(value)
    }

    /// A floating-point number (non-finite values become `null` when written, as in JavaScript).
    public init(_ value: Double) {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            self.text = String(Int64(value))
        } else {
            self.text = value.isFinite ? "\(value)" : "null"
        }
    }

    /// The value as a `Double`.
    public var doubleValue: Double? { Double(self.text) }

    /// The value as an `Int`, when it is integral and in range.
    public var intValue: Int? {
        if let i = Int(self.text) { return i }
        guard let d = Double(self.text), d == d.rounded(), abs(d) < 9.2e18 else { return nil }
        return Int(d)
    }

    /// The JSON text.
    public var description: String { self.text }
}

/// A JSON object whose keys keep their order. A repeated key keeps its first position and its last
/// value, as `JSON.parse` does.
///
/// Finding a key scans the entries while the object is small; past ``indexThreshold`` keys the
/// object also keeps a hash index of their positions, so that building an object of n keys (the
/// parser does it for every object a client sends, before any authentication for a CONNECT's
/// auth) costs O(n) rather than O(n²). Two objects are equal when their entries are.
public struct JSONObject: Hashable, Sendable {
    /// One key and its value.
    public struct Entry: Hashable, Sendable {
        /// The key.
        public var key: String
        /// The value.
        public var value: JSONValue

        /// Creates an entry.
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// The number of keys above which an object keeps an index of its keys: below it, scanning a
    /// few short keys is cheaper than hashing one, and the object carries no table (event
    /// payloads are mostly small objects).
    public static let indexThreshold = 16

    /// The entries, in order.
    public private(set) var entries: [Entry]
    /// The position of every key in ``entries``, once there are more than ``indexThreshold``.
    private var positions: [String: Int]?

    /// Creates an object from entries (later duplicates replace earlier values).
    ///
    /// - Parameter entries: keys and values in order.
    public init(_ entries: [(String, JSONValue)] = []) {
        self.entries = []
        self.entries.reserveCapacity(entries.count)
        for (key, value) in entries { self[key] = value }
    }

    /// Creates an object from entries whose keys are known to be distinct (taken from another
    /// object), without looking any of them up.
    init(distinctEntries entries: [Entry]) {
        self.entries = entries
        if entries.count > Self.indexThreshold { self.rebuildIndex() }
    }

    /// The value of `key`; setting `nil` removes it, setting a new key appends it.
    public subscript(key: String) -> JSONValue? {
        get { self.position(of: key).map { self.entries[$0].value } }
        set {
            if let i = self.position(of: key) {
                if let newValue {
                    self.entries[i].value = newValue
                } else {
                    self.entries.remove(at: i)
                    // Every later position moved: rebuild (or drop) the index.
                    self.positions = nil
                    if self.entries.count > Self.indexThreshold { self.rebuildIndex() }
                }
            } else if let newValue {
                self.entries.append(Entry(key: key, value: newValue))
                if self.positions != nil {
                    self.positions![key] = self.entries.count - 1
                } else if self.entries.count > Self.indexThreshold {
                    self.rebuildIndex()
                }
            }
        }
    }

    /// The keys, in order.
    public var keys: [String] { self.entries.map(\.key) }

    /// The number of keys.
    public var count: Int { self.entries.count }

    /// Two objects are equal when their entries are, in order (the index is a cache).
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool { lhs.entries == rhs.entries }

    /// Hashes the entries.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.entries) }

    private func position(of key: String) -> Int? {
        if let positions = self.positions { return positions[key] }
        return self.entries.firstIndex { $0.key == key }
    }

    private mutating func rebuildIndex() {
        var positions: [String: Int] = [:]
        positions.reserveCapacity(self.entries.count)
        for (i, entry) in self.entries.enumerated() { positions[entry.key] = i }
        self.positions = positions
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByNilLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByFloatLiteral
{
    /// A string.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer.
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    /// A floating-point number.
    public init(floatLiteral value: Double) { self = .number(JSONNumber(value)) }
    /// A bool.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// `null`.
    public init(nilLiteral: ()) { self = .null }
    /// An array.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// An object, keys in the literal's order.
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}
