package import EngineIOCore

/// The flags of a broadcast, as Node's `BroadcastFlags` (socket.io-adapter): each is absent
/// unless set, so that a broadcast crosses a cluster with exactly the flags it was given.
public struct BroadcastFlags: Hashable, Sendable {
    /// Drop the packet for receivers that cannot take it right now.
    public var volatile: Bool?
    /// Whether the packet may be compressed (absent: it may).
    public var compress: Bool?
    /// Only this server's sockets (never sent to other servers).
    public var local: Bool?
    /// Node's `broadcast` flag (set by `socket.broadcast`), kept as it came.
    public var broadcast: Bool?
    /// Node's `binary` flag, kept as it came.
    public var binary: Bool?
    /// The ack timeout of a broadcast with acks, in milliseconds.
    public var timeout: Int?
    /// Node's `expectSingleResponse` flag, kept as it came.
    public var expectSingleResponse: Bool?

    /// No flag set.
    public init(
        volatile: Bool? = nil,
        compress: Bool? = nil,
        local: Bool? = nil,
        broadcast: Bool? = nil,
        binary: Bool? = nil,
        timeout: Int? = nil,
        expectSingleResponse: Bool? = nil
    ) {
        self.volatile = volatile
        self.compress = compress
        self.local = local
        self.broadcast = broadcast
        self.binary = binary
        self.timeout = timeout
        self.expectSingleResponse = expectSingleResponse
    }
}

/// Who a broadcast goes to and how: plain data in Node's shape (`{rooms, except, flags}`), so
/// that an adapter can send it to other servers (see ``jsonValue`` and ``init(json:)``).
public struct BroadcastOptions: Hashable, Sendable {
    /// Only sockets in at least one of these rooms (all sockets of the namespace when empty).
    public var rooms: Set<String>
    /// Never sockets in any of these rooms (a socket id is also a room).
    public var except: Set<String>
    /// The flags.
    public var flags: BroadcastFlags

    /// Drop the packet for receivers that cannot take it right now.
    public var volatile: Bool {
        get { self.flags.volatile ?? false }
        set { self.flags.volatile = newValue ? true : nil }
    }

    /// Only this server's sockets.
    public var local: Bool {
        get { self.flags.local ?? false }
        set { self.flags.local = newValue ? true : nil }
    }

    /// Whether the packet may be compressed (WebSocket permessage-deflate, HTTP compression).
    public var compress: Bool {
        get { self.flags.compress ?? true }
        set { self.flags.compress = newValue }
    }

    /// Creates options.
    ///
    /// - Parameters:
    ///   - rooms: target rooms (empty: everyone).
    ///   - except: excluded rooms.
    ///   - flags: the flags.
    public init(rooms: Set<String> = [], except: Set<String> = [], flags: BroadcastFlags = BroadcastFlags()) {
        self.rooms = rooms
        self.except = except
        self.flags = flags
    }

    /// Creates options with the common flags.
    ///
    /// - Parameters:
    ///   - rooms: target rooms (empty: everyone).
    ///   - except: excluded rooms.
    ///   - volatile: drop for busy receivers.
    ///   - local: this server only.
    ///   - compress: allow compression.
    public init(
        rooms: Set<String> = [],
        except: Set<String> = [],
        volatile: Bool = false,
        local: Bool = false,
        compress: Bool = true
    ) {
        self.init(rooms: rooms, except: except)
        self.volatile = volatile
        self.local = local
        if !compress { self.compress = false }
    }
}

/// The room memberships of one namespace: which sockets are in which rooms, both ways.
///
/// A pure value type; the in-memory adapter keeps one behind a lock. Every socket is in the room
/// named by its own id, as in the reference server.
public struct RoomIndex: Hashable, Sendable {
    // Keys with their hash stored (see `HashedKey`): with thousands of sockets, comparing
    // equal-length ids out of their heap storage on every probe showed in each connection's cost.
    private var members: [HashedKey: Set<HashedKey>] = [:]
    private var roomsOfSocket: [HashedKey: Set<HashedKey>] = [:]

    /// An empty index.
    public init() {}

    /// The number of sockets.
    public var socketCount: Int { self.roomsOfSocket.count }

    /// All rooms that have members.
    public var rooms: Set<String> { Set(self.members.keys.lazy.map(\.string)) }

    /// Adds `socket` to `rooms`.
    public mutating func join(_ socket: String, _ rooms: some Sequence<String>) {
        self.join(HashedKey(socket), rooms.lazy.map(HashedKey.init))
    }

    /// Adds `socket` to `rooms`.
    package mutating func join(_ socket: HashedKey, _ rooms: some Sequence<HashedKey>) {
        for room in rooms {
            self.members[room, default: []].insert(socket)
            self.roomsOfSocket[socket, default: []].insert(room)
        }
    }

    /// Removes `socket` from `room`.
    public mutating func leave(_ socket: String, _ room: String) {
        let socket = HashedKey(socket)
        let room = HashedKey(room)
        if var sockets = self.members[room] {
            sockets.remove(socket)
            self.members[room] = sockets.isEmpty ? nil : sockets
        }
        self.roomsOfSocket[socket]?.remove(room)
    }

    /// Removes `socket` from every room.
    public mutating func remove(_ socket: String) {
        self.remove(HashedKey(socket))
    }

    /// Removes `socket` from every room.
    package mutating func remove(_ socket: HashedKey) {
        guard let rooms = self.roomsOfSocket.removeValue(forKey: socket) else { return }
        for room in rooms {
            if var sockets = self.members[room] {
                sockets.remove(socket)
                self.members[room] = sockets.isEmpty ? nil : sockets
            }
        }
    }

    /// The rooms of `socket`, or `nil` when it is unknown.
    public func rooms(of socket: String) -> Set<String>? {
        self.roomsOfSocket[HashedKey(socket)].map { Set($0.lazy.map(\.string)) }
    }

    /// The members of `room`.
    public func sockets(in room: String) -> Set<String> {
        Set((self.members[HashedKey(room)] ?? []).lazy.map(\.string))
    }

    /// The sockets that `options` select: members of any of its rooms (everyone when it names
    /// none), minus members of any excepted room.
    public func select(_ options: BroadcastOptions) -> [String] {
        self.selectKeys(options).map(\.string)
    }

    /// ``select(_:)`` as keys.
    package func selectKeys(_ options: BroadcastOptions) -> [HashedKey] {
        if options.except.isEmpty, options.rooms.count == 1, let room = options.rooms.first {
            // The common case (one room, no exclusions): members are already unique.
            return Array(self.members[HashedKey(room)] ?? [])
        }
        var excluded = Set<HashedKey>()
        for room in options.except { excluded.formUnion(self.members[HashedKey(room)] ?? []) }
        if options.rooms.isEmpty {
            return self.roomsOfSocket.keys.filter { !excluded.contains($0) }
        }
        var seen = Set<HashedKey>()
        var out: [HashedKey] = []
        for room in options.rooms {
            for socket in self.members[HashedKey(room)] ?? []
            where !excluded.contains(socket) && seen.insert(socket).inserted {
                out.append(socket)
            }
        }
        return out
    }
}
