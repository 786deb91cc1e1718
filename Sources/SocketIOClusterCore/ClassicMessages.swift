public import NIOCore
public import SocketIOCore

/// The messages of `@socket.io/redis-adapter` 8.3's classic adapter (`createAdapter`), byte for
/// byte: broadcasts on `<key>#<nsp>#[<room>#]` as MessagePack `[uid, packet, opts]`; requests on
/// `<key>-request#<nsp>#` and their responses on `<key>-response#<nsp>#[<uid>#]`, as JSON with
/// keys in Node's order, except the broadcast-with-ack request (type 7) and each ack (type 9),
/// which are MessagePack.
public enum ClassicMessage {
    /// A broadcast: who sent it, the event, and its options.
    public struct Broadcast: Hashable, Sendable {
        /// The sending adapter's uid.
        public var uid: String
        /// The event packet (its namespace is the message's).
        public var packet: SocketIOPacket
        /// The options (rooms, except, flags).
        public var options: BroadcastOptions

        /// Creates one.
        public init(uid: String, packet: SocketIOPacket, options: BroadcastOptions) {
            self.uid = uid
            self.packet = packet
            self.options = options
        }

        /// The message: MessagePack `[uid, {type, data, nsp}, {rooms, except, flags}]`.
        public var encoded: ByteBuffer {
            ClusterEncoding.msgpack.encode(
                .array([.string(self.uid), self.packet.clusterValue(withNamespace: true), self.options.jsonValue()])
            )
        }

        /// Reads a broadcast message.
        ///
        /// - Throws: ``ClusterCodecError``.
        public init(decoding bytes: ByteBuffer) throws(ClusterCodecError) {
            let (value, _) = try ClusterEncoding.decode(bytes)
            guard case .array(let items) = value, items.count >= 3, let uid = items[0].stringValue else {
                throw .invalidMessage("not [uid, packet, opts]")
            }
            self.uid = uid
            self.packet = try SocketIOPacket(clusterValue: items[1])
            do {
                self.options = try BroadcastOptions(json: items[2])
            } catch {
                throw .invalidMessage("invalid options")
            }
        }
    }

    /// A request (`type` 1–7; 0, SOCKETS, is never sent by 8.x and is not read).
    public enum Request: Hashable, Sendable {
        /// 1: every room of every server.
        case allRooms(uid: String, requestId: String)
        /// 2: make the selected sockets join `rooms`.
        case join(uid: String, options: BroadcastOptions, rooms: [String])
        /// 3: make them leave `rooms`.
        case leave(uid: String, options: BroadcastOptions, rooms: [String])
        /// 4: disconnect them.
        case disconnect(uid: String, options: BroadcastOptions, close: Bool)
        /// 5: describe them.
        case fetch(uid: String, requestId: String, options: BroadcastOptions)
        /// 6: a server-side event (`data` starts with its name); answered when `requestId` is set.
        case serverSideEmit(uid: String, requestId: String?, data: [JSONValue])
        /// 7: a broadcast that wants acks.
        case broadcastWithAck(uid: String, requestId: String, packet: SocketIOPacket, options: BroadcastOptions)

        /// The sender's uid.
        public var uid: String {
            switch self {
            case .allRooms(let uid, _), .join(let uid, _, _), .leave(let uid, _, _), .disconnect(let uid, _, _),
                .fetch(let uid, _, _), .serverSideEmit(let uid, _, _), .broadcastWithAck(let uid, _, _, _):
                return uid
            }
        }

        /// The message, in the encoding Node uses for it.
        public var encoded: ByteBuffer {
            var object = JSONObject()
            switch self {
            case .allRooms(let uid, let requestId):
                object["uid"] = .string(uid)
                object["requestId"] = .string(requestId)
                object["type"] = 1
            case .join(let uid, let options, let rooms), .leave(let uid, let options, let rooms):
                object["uid"] = .string(uid)
                if case .join = self { object["type"] = 2 } else { object["type"] = 3 }
                object["opts"] = options.jsonValue(withFlags: false)
                object["rooms"] = .array(rooms.map(JSONValue.string))
            case .disconnect(let uid, let options, let close):
                object["uid"] = .string(uid)
                object["type"] = 4
                object["opts"] = options.jsonValue(withFlags: false)
                object["close"] = .bool(close)
            case .fetch(let uid, let requestId, let options):
                object["uid"] = .string(uid)
                object["requestId"] = .string(requestId)
                object["type"] = 5
                object["opts"] = options.jsonValue(withFlags: false)
            case .serverSideEmit(let uid, let requestId, let data):
                object["uid"] = .string(uid)
                if let requestId { object["requestId"] = .string(requestId) }
                object["type"] = 6
                object["data"] = .array(data)
            case .broadcastWithAck(let uid, let requestId, let packet, let options):
                object["uid"] = .string(uid)
                object["requestId"] = .string(requestId)
                object["type"] = 7
                object["packet"] = packet.clusterValue(withNamespace: true)
                object["opts"] = options.jsonValue()
                return ClusterEncoding.msgpack.encode(.object(object))
            }
            return ClusterEncoding.json.encode(.object(object))
        }

        /// Reads a request (JSON or MessagePack).
        ///
        /// - Throws: ``ClusterCodecError``.
        public init(decoding bytes: ByteBuffer, namespace: String) throws(ClusterCodecError) {
            let (value, _) = try ClusterEncoding.decode(bytes)
            let uid = try value.string("uid")
            func options() throws(ClusterCodecError) -> BroadcastOptions {
                do {
                    return try BroadcastOptions(json: value["opts"] ?? .object(JSONObject()))
                } catch {
                    throw .invalidMessage("invalid opts")
                }
            }
            func rooms() throws(ClusterCodecError) -> [String] {
                guard case .array(let items) = try value.field("rooms") else { throw .invalidMessage("rooms") }
                var rooms: [String] = []
                for item in items {
                    guard let room = try? BroadcastOptions.room(item) else { throw .invalidMessage("room") }
                    rooms.append(room)
                }
                return rooms
            }
            switch try value.int("type") {
            case 1: self = .allRooms(uid: uid, requestId: try value.string("requestId"))
            case 2: self = .join(uid: uid, options: try options(), rooms: try rooms())
            case 3: self = .leave(uid: uid, options: try options(), rooms: try rooms())
            case 4: self = .disconnect(uid: uid, options: try options(), close: value["close"]?.boolValue ?? false)
            case 5: self = .fetch(uid: uid, requestId: try value.string("requestId"), options: try options())
            case 6:
                guard case .array(let data) = try value.field("data") else { throw .invalidMessage("data") }
                self = .serverSideEmit(uid: uid, requestId: value["requestId"]?.stringValue, data: data)
            case 7:
                self = .broadcastWithAck(
                    uid: uid,
                    requestId: try value.string("requestId"),
                    packet: try SocketIOPacket(clusterValue: try value.field("packet"), defaultNamespace: namespace),
                    options: try options()
                )
            case let type:
                throw .unknownType(type)
            }
        }
    }

    /// A response to a request (it carries no uid).
    public enum Response: Hashable, Sendable {
        /// To ALL_ROOMS: `{requestId, rooms}`.
        case rooms(requestId: String, rooms: [String])
        /// To REMOTE_FETCH: `{requestId, sockets}`.
        case sockets(requestId: String, sockets: [ClusterSocketInfo])
        /// To a server-side emit with ack: `{type: 6, requestId, data}`.
        case serverSideEmit(requestId: String, data: JSONValue)
        /// To a broadcast with acks, first: `{type: 8, requestId, clientCount}`.
        case clientCount(requestId: String, count: Int)
        /// Then one per answering client: MessagePack `{type: 9, requestId, packet}` (the first
        /// argument of the client's ack).
        case ack(requestId: String, packet: JSONValue)

        /// The request it answers.
        public var requestId: String {
            switch self {
            case .rooms(let id, _), .sockets(let id, _), .serverSideEmit(let id, _), .clientCount(let id, _),
                .ack(let id, _):
                return id
            }
        }

        /// The message, in the encoding Node uses for it.
        public var encoded: ByteBuffer {
            var object = JSONObject()
            switch self {
            case .rooms(let requestId, let rooms):
                object["requestId"] = .string(requestId)
                object["rooms"] = .array(rooms.map(JSONValue.string))
            case .sockets(let requestId, let sockets):
                object["requestId"] = .string(requestId)
                object["sockets"] = .array(sockets.map(\.jsonValue))
            case .serverSideEmit(let requestId, let data):
                object["type"] = 6
                object["requestId"] = .string(requestId)
                object["data"] = data
            case .clientCount(let requestId, let count):
                object["type"] = 8
                object["requestId"] = .string(requestId)
                object["clientCount"] = .number(JSONNumber(count))
            case .ack(let requestId, let packet):
                object["type"] = 9
                object["requestId"] = .string(requestId)
                object["packet"] = packet
                return ClusterEncoding.msgpack.encode(.object(object))
            }
            return ClusterEncoding.json.encode(.object(object))
        }

        /// Reads a response (JSON or MessagePack).
        ///
        /// - Throws: ``ClusterCodecError``.
        public init(decoding bytes: ByteBuffer) throws(ClusterCodecError) {
            let (value, _) = try ClusterEncoding.decode(bytes)
            let requestId = try value.string("requestId")
            switch value["type"]?.intValue {
            case 6?: self = .serverSideEmit(requestId: requestId, data: value["data"] ?? .null)
            case 8?: self = .clientCount(requestId: requestId, count: try value.int("clientCount"))
            case 9?: self = .ack(requestId: requestId, packet: value["packet"] ?? .null)
            case nil:
                if let rooms = value["rooms"]?.arrayValue {
                    var names: [String] = []
                    for room in rooms {
                        guard let name = try? BroadcastOptions.room(room) else { throw .invalidMessage("room") }
                        names.append(name)
                    }
                    self = .rooms(requestId: requestId, rooms: names)
                } else if let sockets = value["sockets"]?.arrayValue {
                    var infos: [ClusterSocketInfo] = []
                    for socket in sockets { infos.append(try ClusterSocketInfo(json: socket)) }
                    self = .sockets(requestId: requestId, sockets: infos)
                } else {
                    throw .invalidMessage("neither rooms nor sockets")
                }
            case let type?:
                throw .unknownType(type)
            }
        }
    }
}
