import MessagePackCore
public import NIOCore
public import SocketIOCore

/// How cluster messages are written: JSON as `JSON.stringify` writes it (a binary value as
/// Node's `Buffer.toJSON()`, `{"type":"Buffer","data":[…]}`), or MessagePack as notepack.io
/// writes it; and read, whichever of the two they are (Node's receivers sniff the first byte:
/// `{` is JSON).
public enum ClusterEncoding: Sendable, Hashable {
    /// JSON text.
    case json
    /// MessagePack.
    case msgpack

    /// Writes `value`.
    public func encode(_ value: JSONValue) -> ByteBuffer {
        switch self {
        case .json:
            var buffer = ByteBuffer()
            value.write(into: &buffer) { bytes, out in
                out.writeStaticString(#"{"type":"Buffer","data":["#)
                var first = true
                for byte in bytes.readableBytesView {
                    if !first { out.writeInteger(UInt8(ascii: ",")) }
                    first = false
                    out.writeString(String(byte))
                }
                out.writeStaticString("]}")
            }
            return buffer
        case .msgpack:
            return MessagePackEncoder.encode(value.messagePackValue)
        }
    }

    /// Reads a message in either encoding.
    ///
    /// - Throws: ``ClusterCodecError``.
    public static func decode(_ bytes: ByteBuffer) throws(ClusterCodecError) -> (JSONValue, ClusterEncoding) {
        if bytes.readableBytesView.first == UInt8(ascii: "{") {
            do {
                return (try JSONParser.parse(bytes.readableBytesView), .json)
            } catch {
                throw .invalidJSON
            }
        }
        do {
            return (JSONValue(messagePack: try MessagePackDecoder.decode(bytes)), .msgpack)
        } catch {
            throw .invalidMessagePack
        }
    }
}

/// Why a cluster message was dropped.
public enum ClusterCodecError: Error, Hashable, Sendable {
    /// Not JSON (the first byte said it was).
    case invalidJSON
    /// Not MessagePack.
    case invalidMessagePack
    /// Not a message of the cluster protocol (a missing field, a field of the wrong type).
    case invalidMessage(String)
    /// A message type this server does not know (from a newer version).
    case unknownType(Int)
}

extension JSONValue {
    /// Whether a binary value is anywhere inside (Node's `hasBinary`).
    public var hasBinary: Bool { self.containsBinary }

    /// The field `key` of an object message, or the error.
    func field(_ key: String) throws(ClusterCodecError) -> JSONValue {
        guard let value = self[key] else { throw .invalidMessage("no \(key)") }
        return value
    }

    /// A string field.
    func string(_ key: String) throws(ClusterCodecError) -> String {
        guard let value = try self.field(key).stringValue else { throw .invalidMessage("\(key) is not a string") }
        return value
    }

    /// An integer field.
    func int(_ key: String) throws(ClusterCodecError) -> Int {
        guard let value = try self.field(key).intValue else { throw .invalidMessage("\(key) is not an integer") }
        return value
    }
}

/// An event packet as Node's adapters carry it: `{type, data, nsp}` (classic) or `{type, data}`
/// (sharded, the namespace being the message's). `type` stays 2 with binary inside (binary
/// travels as MessagePack `bin`); an `id`, if any, is ignored (receivers give their own).
extension SocketIOPacket {
    /// The packet as Node's map.
    public func clusterValue(withNamespace: Bool) -> JSONValue {
        var object = JSONObject()
        object["type"] = .number(JSONNumber(2))
        object["data"] = self.payload ?? .array([])
        if withNamespace { object["nsp"] = .string(self.namespace) }
        return .object(object)
    }

    /// Reads Node's packet map; a missing `nsp` is `defaultNamespace` (Node reads it as `/`).
    ///
    /// - Throws: ``ClusterCodecError`` unless it is an event (types 2 or 5) with an array.
    public init(clusterValue value: JSONValue, defaultNamespace: String = "/") throws(ClusterCodecError) {
        let type = try value.int("type")
        guard type == 2 || type == 5, case .array(let items) = try value.field("data"), items.first != nil else {
            throw .invalidMessage("not an event packet")
        }
        self.init(
            kind: .event,
            namespace: value["nsp"]?.stringValue ?? defaultNamespace,
            payload: .array(items)
        )
    }
}

/// What a server says about one of its sockets in a `fetchSockets` answer:
/// `{id, handshake, rooms, data}`.
public struct ClusterSocketInfo: Hashable, Sendable {
    /// The socket id.
    public var id: String
    /// Its handshake, in Node's shape.
    public var handshake: JSONValue
    /// Its rooms (numbers read as their text).
    public var rooms: [String]
    /// Its `socket.data`.
    public var data: JSONValue

    /// Creates one.
    public init(id: String, handshake: JSONValue, rooms: [String], data: JSONValue) {
        self.id = id
        self.handshake = handshake
        self.rooms = rooms
        self.data = data
    }

    var jsonValue: JSONValue {
        var object = JSONObject()
        object["id"] = .string(self.id)
        object["handshake"] = self.handshake
        object["rooms"] = .array(self.rooms.map(JSONValue.string))
        object["data"] = self.data
        return .object(object)
    }

    init(json value: JSONValue) throws(ClusterCodecError) {
        self.id = try value.string("id")
        self.handshake = value["handshake"] ?? .object(JSONObject())
        var rooms: [String] = []
        for room in value["rooms"]?.arrayValue ?? [] {
            guard let name = try? BroadcastOptions.room(room) else { throw .invalidMessage("a room is not a name") }
            rooms.append(name)
        }
        self.rooms = rooms
        self.data = value["data"] ?? .null
    }
}
