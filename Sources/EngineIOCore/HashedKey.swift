/// A string used as a table key (session ids, socket ids, room names), with its hash computed
/// once.
///
/// Tables of many ids that share a length probe several slots per lookup, and comparing two
/// `String`s of equal length reads both out of their heap storage: with thousands of clients
/// each probe was a cache miss. A key compares its stored hash first, in the table's own memory,
/// and reads the characters only when the hashes agree. The hash is Swift's own, seeded per
/// process, so chosen names (rooms) cannot be made to collide.
package struct HashedKey: Hashable, Sendable, CustomStringConvertible {
    /// The string.
    package let string: String
    private let hash: Int

    /// Wraps `string`.
    package init(_ string: String) {
        self.string = string
        self.hash = string.hashValue
    }

    package static func == (lhs: HashedKey, rhs: HashedKey) -> Bool {
        lhs.hash == rhs.hash && lhs.string == rhs.string
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(self.hash)
    }

    package var description: String { self.string }
}
