/// The two Engine.IO transports.
public enum EngineIOTransport: String, Hashable, Sendable, CaseIterable {
    /// HTTP long-polling.
    case polling
    /// WebSocket (RFC 6455).
    case websocket
}

/// The decoded query string of a request URI, in order, percent-decoded.
///
/// It keeps the query text as it came (a slice of the URI, no copy) and decodes on access: a
/// request asks for two or three parameters, so parsing every one up front, into arrays of
/// strings kept for the session's life, cost more than it saved.
public struct EngineIOQuery: Hashable, Sendable {
    /// The query text: after the first `?`, before any `#`.
    private let text: Substring

    /// The parameters, in the order they appeared.
    public var items: [(name: String, value: String)] {
        var items: [(name: String, value: String)] = []
        self.forEachPair { name, value in
            items.append((Self.percentDecode(name), Self.percentDecode(value)))
            return false
        }
        return items
    }

    /// Parses the query part of `uri` (everything after the first `?`).
    ///
    /// - Parameter uri: a request target such as `/engine.io/?EIO=4&transport=polling`.
    public init(uri: String) {
        let utf8 = uri.utf8
        guard let q = utf8.firstIndex(of: UInt8(ascii: "?")) else {
            self.text = ""
            return
        }
        let end = utf8[q...].firstIndex(of: UInt8(ascii: "#")) ?? utf8.endIndex
        self.text = Substring(utf8[utf8.index(after: q)..<end])
    }

    /// The first value of parameter `name`, if present.
    public subscript(name: String) -> String? {
        var found: String?
        self.forEachPair { rawName, value in
            // Names that need no decoding (all of Engine.IO's) compare byte by byte, without a copy.
            let matches =
                Self.needsDecoding(rawName) ? Self.percentDecode(rawName) == name : rawName.elementsEqual(name.utf8)
            if matches { found = Self.percentDecode(value) }
            return matches
        }
        return found
    }

    /// Calls `body` with the raw UTF-8 bytes of each `name=value` pair (a pair without `=` has an
    /// empty value), until it returns `true`. Over the query's bytes in place: the delimiters are
    /// ASCII, and no substring is made per pair.
    private func forEachPair(_ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Bool) {
        var text = self.text
        text.withUTF8 { bytes in
            var start = 0
            while start < bytes.count {
                var stop = start
                while stop < bytes.count && bytes[stop] != UInt8(ascii: "&") { stop += 1 }
                if start < stop {
                    var equals = start
                    while equals < stop && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                    let name = UnsafeBufferPointer(rebasing: bytes[start..<equals])
                    let value = UnsafeBufferPointer(rebasing: bytes[(equals < stop ? equals + 1 : stop)..<stop])
                    if body(name, value) { return }
                }
                start = stop + 1
            }
        }
    }

    private static func needsDecoding(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.contains { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }
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

    static func percentDecode(_ raw: UnsafeBufferPointer<UInt8>) -> String {
        // Most parameters (EIO=4, transport=polling, sid=…) need no decoding.
        if !Self.needsDecoding(raw) { return String(decoding: raw, as: UTF8.self) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.count)
        var it = raw[...]
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
        lhs.items.elementsEqual(rhs.items) { $0.name == $1.name && $0.value == $1.value }
    }

    /// Hashes the parameters in order.
    public func hash(into hasher: inout Hasher) {
        for (name, value) in self.items {
            hasher.combine(name)
            hasher.combine(value)
        }
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
        var json = "{\"sid\":"
        json.reserveCapacity(160)
        // Generated ids are URL-safe and need no escaping; only an application's own may.
        if self.sid.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            json += "\""
            json += self.sid
            json += "\""
        } else {
            json += JSONString.quote(self.sid)
        }
        json += ",\"upgrades\":["
        for (index, upgrade) in self.upgrades.enumerated() {
            json += index == 0 ? "\"" : ",\""
            json += upgrade.rawValue
            json += "\""
        }
        json += "],\"pingInterval\":"
        json += String(self.pingInterval)
        json += ",\"pingTimeout\":"
        json += String(self.pingTimeout)
        json += ",\"maxPayload\":"
        json += String(self.maxPayload)
        json += "}"
        return json
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
        if let id = bytes.withContiguousStorageIfAvailable({ self.make(from: UnsafeRawBufferPointer($0)) }) {
            return id
        }
        return Array(bytes).withUnsafeBytes { self.make(from: $0) }
    }

    /// Turns the first 15 of `bytes` into a 20-character URL-safe id (fewer give a shorter id),
    /// written straight into the string's storage.
    ///
    /// - Parameter bytes: random bytes.
    /// - Returns: the id.
    public static func make(from bytes: UnsafeRawBufferPointer) -> String {
        let count = min(bytes.count, 15)
        return String(unsafeUninitializedCapacity: (count + 2) / 3 * 4) { out in
            var written = 0
            var index = 0
            while index < count {
                let b0 = bytes[index]
                let b1 = index + 1 < count ? bytes[index + 1] : 0
                let b2 = index + 2 < count ? bytes[index + 2] : 0
                let n = UInt32(b0) << 16 | UInt32(b1) << 8 | UInt32(b2)
                out[written] = self.alphabet[Int(n >> 18 & 63)]
                out[written + 1] = self.alphabet[Int(n >> 12 & 63)]
                out[written + 2] = self.alphabet[Int(n >> 6 & 63)]
                out[written + 3] = self.alphabet[Int(n & 63)]
                written += 4
                index += 3
            }
            return written
        }
    }
}
