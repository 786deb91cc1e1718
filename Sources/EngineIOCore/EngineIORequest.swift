/// The two Engine.IO transports.
public enum EngineIOTransport: String, Hashable, Sendable, CaseIterable {
    /// HTTP long-polling.
    case polling
    /// WebSocket (RFC 6455).
    case websocket
}

/// The decoded query string of a request URI, in order, percent-decoded.
public struct EngineIOQuery: Hashable, Sendable {
    /// The parameters, in the order they appeared.
    public var items: [(name: String, value: String)] {
        zip(self.names, self.values).map { ($0, $1) }
    }

    private var names: [String]
    private var values: [String]

    /// Parses the query part of `uri` (everything after the first `?`).
    ///
    /// - Parameter uri: a request target such as `/engine.io/?EIO=4&transport=polling`.
    public init(uri: String) {
        self.names = []
        self.values = []
        // Byte-wise over the UTF-8: the delimiters are ASCII, and Character-wise searching and
        // splitting cost a tenth of a long-poll's server time.
        let utf8 = uri.utf8
        guard let q = utf8.firstIndex(of: UInt8(ascii: "?")) else { return }
        var end = utf8.endIndex
        if let hash = utf8[q...].firstIndex(of: UInt8(ascii: "#")) { end = hash }
        var start = utf8.index(after: q)
        while start < end {
            let stop = utf8[start..<end].firstIndex(of: UInt8(ascii: "&")) ?? end
            if start < stop {
                let pair = Substring(utf8[start..<stop])
                if let eq = pair.utf8.firstIndex(of: UInt8(ascii: "=")) {
                    self.names.append(Self.percentDecode(Substring(pair.utf8[..<eq])))
                    self.values.append(Self.percentDecode(Substring(pair.utf8[pair.utf8.index(after: eq)...])))
                } else {
                    self.names.append(Self.percentDecode(pair))
                    self.values.append("")
                }
            }
            start = stop < end ? utf8.index(after: stop) : end
        }
    }

    /// The first value of parameter `name`, if present.
    public subscript(name: String) -> String? {
        guard let i = self.names.firstIndex(of: name) else { return nil }
        return self.values[i]
    }

    /// Returns the path part of `uri` (before `?`).
    ///
    /// - Parameter uri: a request target.
    /// - Returns: the path.
    public static func path(of uri: String) -> Substring {
        if let q = uri.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            return uri[..<q]
        }
        return uri[...]
    }

    static func percentDecode(_ s: Substring) -> String {
        // Most parameters (EIO=4, transport=polling, sid=…) need no decoding.
        if !s.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) { return String(s) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if c == UInt8(ascii: "%"), it.count >= 2, let h = hex(it[it.startIndex]),
                let l = hex(it[it.startIndex + 1])
            {
                bytes.append(h << 4 | l)
                it = it.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Two queries are equal when they have the same parameters in the same order.
    public static func == (lhs: EngineIOQuery, rhs: EngineIOQuery) -> Bool {
        lhs.names == rhs.names && lhs.values == rhs.values
    }

    /// Hashes the parameters in order.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.names)
        hasher.combine(self.values)
    }
}

/// What an Engine.IO request asks for, once its method and query have been validated.
public enum EngineIORequestKind: Hashable, Sendable {
    /// A new session over long-polling (`GET`, no `sid`).
    case pollingHandshake
    /// A new session directly over WebSocket (an Upgrade request, no `sid`).
    case websocketHandshake
    /// A long-poll for session `sid` (`GET`).
    case poll(sid: String)
    /// Packets for session `sid` (`POST`).
    case post(sid: String)
    /// A WebSocket upgrade of session `sid`.
    case websocketUpgrade(sid: String)

    /// Classifies a request, applying the checks of the Engine.IO v4 reference server in its order.
    ///
    /// Session lookups (unknown `sid`, transport mismatch) happen later, against the registry.
    ///
    /// - Parameters:
    ///   - method: the HTTP method.
    ///   - query: the decoded query string.
    ///   - isUpgrade: whether the request asks for a WebSocket upgrade.
    ///   - transports: the transports enabled on the server.
    ///   - allowUpgrades: whether polling sessions may upgrade to WebSocket.
    /// - Returns: the request kind.
    /// - Throws: the ``EngineIOError`` to answer with.
    public static func classify(
        method: String,
        query: EngineIOQuery,
        isUpgrade: Bool,
        transports: Set<EngineIOTransport>,
        allowUpgrades: Bool
    ) throws(EngineIOError) -> EngineIORequestKind {
        guard let name = query["transport"], let transport = EngineIOTransport(rawValue: name),
            transports.contains(transport)
        else { throw .unknownTransport }
        guard query["EIO"] == "4" else { throw .unsupportedProtocolVersion }
        if let sid = query["sid"] {
            switch transport {
            case .polling:
                switch method {
                case "GET": return .poll(sid: sid)
                case "POST": return .post(sid: sid)
                default: throw .badRequest
                }
            case .websocket:
                guard isUpgrade, method == "GET" else { throw .badRequest }
                guard allowUpgrades else { throw .badRequest }
                return .websocketUpgrade(sid: sid)
            }
        }
        guard method == "GET" else { throw .badHandshakeMethod }
        switch transport {
        case .polling: return .pollingHandshake
        case .websocket:
            guard isUpgrade else { throw .badRequest }
            return .websocketHandshake
        }
    }
}

/// The handshake object sent in the open packet (Engine.IO v4: exactly these five keys).
public struct EngineIOHandshake: Hashable, Sendable {
    /// The session id.
    public var sid: String
    /// The transports the session may upgrade to.
    public var upgrades: [EngineIOTransport]
    /// The heartbeat interval, in milliseconds.
    public var pingInterval: Int64
    /// The heartbeat timeout, in milliseconds.
    public var pingTimeout: Int64
    /// The largest payload the server accepts, in bytes.
    public var maxPayload: Int

    /// Creates a handshake object.
    ///
    /// - Parameters:
    ///   - sid: the session id.
    ///   - upgrades: the transports the session may upgrade to.
    ///   - pingInterval: milliseconds between pings.
    ///   - pingTimeout: milliseconds to wait for a pong.
    ///   - maxPayload: the largest payload accepted, in bytes.
    public init(sid: String, upgrades: [EngineIOTransport], pingInterval: Int64, pingTimeout: Int64, maxPayload: Int) {
        self.sid = sid
        self.upgrades = upgrades
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxPayload = maxPayload
    }

    /// The compact JSON form, keys in the reference order.
    public var json: String {
        let upgrades = self.upgrades.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        return
            "{\"sid\":\(JSONString.quote(self.sid)),\"upgrades\":[\(upgrades)],\"pingInterval\":\(self.pingInterval),"
            + "\"pingTimeout\":\(self.pingTimeout),\"maxPayload\":\(self.maxPayload)}"
    }
}

/// Session id generation.
public enum EngineIOSessionID {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8
    )

    /// Turns 15 random bytes into a 20-character URL-safe id, the shape of the reference server's ids.
    ///
    /// - Parameter bytes: random bytes (15 are used; fewer give a shorter id).
    /// - Returns: the id.
    public static func make<Bytes: Collection>(from bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(20)
        var it = bytes.prefix(15).makeIterator()
        while let b0 = it.next() {
            let b1 = it.next() ?? 0
            let b2 = it.next() ?? 0
            let n = UInt32(b0) << 16 | UInt32(b1) << 8 | UInt32(b2)
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
