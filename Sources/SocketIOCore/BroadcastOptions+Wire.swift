/// The options of a broadcast as Node's cluster adapters send them:
/// `{"rooms":[…],"except":[…],"flags":{…}}` (socket.io-adapter 2.5, `@socket.io/redis-adapter`
/// 8.3), rooms in sorted order (Node sends insertion order; order carries no meaning), flags in
/// a fixed order and only those set.
extension BroadcastOptions {
    /// The options as a value in Node's shape (`withFlags: false` leaves out `flags`, as Node's
    /// join, leave, disconnect and fetch requests do).
    public func jsonValue(withFlags: Bool = true) -> JSONValue {
        var object = JSONObject()
        object["rooms"] = .array(self.rooms.sorted().map(JSONValue.string))
        object["except"] = .array(self.except.sorted().map(JSONValue.string))
        if withFlags { object["flags"] = self.flags.jsonValue }
        return .object(object)
    }

    /// Reads options in Node's shape; a room that is a number (Node allows any key) becomes its
    /// decimal text, so that it meets the same room joined by name here.
    ///
    /// - Throws: ``SocketIOCodecError/invalidPayload`` when the value is not in that shape.
    public init(json value: JSONValue) throws(SocketIOCodecError) {
        guard case .object(let object) = value else { throw .invalidPayload }
        self.init(
            rooms: try Self.rooms(object["rooms"]),
            except: try Self.rooms(object["except"]),
            flags: try object["flags"].map { value throws(SocketIOCodecError) in try BroadcastFlags(json: value) }
                ?? BroadcastFlags()
        )
    }

    /// A room list: absent or null is empty; strings and numbers are rooms.
    static func rooms(_ value: JSONValue?) throws(SocketIOCodecError) -> Set<String> {
        switch value {
        case nil, .null?: return []
        case .array(let items)?:
            var rooms = Set<String>()
            for item in items { rooms.insert(try Self.room(item)) }
            return rooms
        default: throw .invalidPayload
        }
    }

    /// One room name: a string, or a number as its text.
    public static func room(_ value: JSONValue) throws(SocketIOCodecError) -> String {
        switch value {
        case .string(let room): return room
        case .number(let number): return number.text
        case .null, .bool, .array, .object, .binary: throw .invalidPayload
        }
    }
}

extension BroadcastFlags {
    /// The flags that are set, as Node's object (`{}` when none).
    public var jsonValue: JSONValue {
        var object = JSONObject()
        if let volatile = self.volatile { object["volatile"] = .bool(volatile) }
        if let compress = self.compress { object["compress"] = .bool(compress) }
        if let local = self.local { object["local"] = .bool(local) }
        if let broadcast = self.broadcast { object["broadcast"] = .bool(broadcast) }
        if let binary = self.binary { object["binary"] = .bool(binary) }
        if let timeout = self.timeout { object["timeout"] = .number(JSONNumber(timeout)) }
        if let single = self.expectSingleResponse { object["expectSingleResponse"] = .bool(single) }
        return .object(object)
    }

    /// Reads Node's flags object; unknown flags are ignored (a newer Node may add some).
    ///
    /// - Throws: ``SocketIOCodecError/invalidPayload`` when it is not an object or a known flag
    ///   has the wrong type.
    public init(json value: JSONValue) throws(SocketIOCodecError) {
        guard case .object(let object) = value else { throw .invalidPayload }
        func flag(_ name: String) throws(SocketIOCodecError) -> Bool? {
            switch object[name] {
            case nil, .null?: return nil
            case .bool(let value)?: return value
            default: throw .invalidPayload
            }
        }
        self.init(
            volatile: try flag("volatile"),
            compress: try flag("compress"),
            local: try flag("local"),
            broadcast: try flag("broadcast"),
            binary: try flag("binary"),
            timeout: try object["timeout"].map { value throws(SocketIOCodecError) -> Int in
                guard let timeout = value.intValue else { throw .invalidPayload }
                return timeout
            },
            expectSingleResponse: try flag("expectSingleResponse")
        )
    }
}
