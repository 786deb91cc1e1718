public import NIOCore

/// One Socket.IO protocol v5 packet, as carried in one Engine.IO message.
///
/// Wire layout (Socket.IO v5): a type digit; for binary types the attachment count and `-`; the
/// namespace and `,` unless it is `/`; an optional ack id (digits); an optional JSON payload.
/// Binary packets are followed by one Engine.IO binary message per attachment; their JSON holds
/// `{"_placeholder":true,"num":N}` objects where the binaries go.
public struct SocketIOPacket: Hashable, Sendable {
    /// The packet type.
    public enum Kind: UInt8, Hashable, Sendable {
        /// `0`: connect to a namespace (client) or accept it (server).
        case connect = 0
        /// `1`: leave a namespace.
        case disconnect = 1
        /// `2`: an event: `["name", args...]`.
        case event = 2
        /// `3`: the answer to an event that asked for one: `[args...]`.
        case ack = 3
        /// `4`: a refused namespace connection: `{"message":...,"data":...}`.
        case connectError = 4
        /// `5`: an event with binary attachments.
        case binaryEvent = 5
        /// `6`: an ack with binary attachments.
        case binaryAck = 6
    }

    /// The packet type.
    public var kind: Kind
    /// The namespace (`/` by default).
    public var namespace: String
    /// The ack id, if the sender wants (or this is) an answer.
    public var ackID: UInt64?
    /// The payload. For binary packets, the binaries are already in place (``JSONValue/binary(_:)``).
    public var payload: JSONValue?

    /// Creates a packet.
    ///
    /// - Parameters:
    ///   - kind: the type (``Kind/event`` and ``Kind/ack`` become binary automatically on encode
    ///     when the payload holds binary data).
    ///   - namespace: the namespace.
    ///   - ackID: the ack id.
    ///   - payload: the payload.
    public init(kind: Kind, namespace: String = "/", ackID: UInt64? = nil, payload: JSONValue? = nil) {
        self.kind = kind
        self.namespace = namespace
        self.ackID = ackID
        self.payload = payload
    }

    /// For events: the event name (the first array element).
    public var eventName: String? {
        guard self.kind == .event || self.kind == .binaryEvent, case .array(let items) = self.payload else {
            return nil
        }
        return items.first?.stringValue
    }

    /// For events: the arguments after the name. For acks: all elements.
    public var arguments: [JSONValue] {
        guard case .array(let items) = self.payload else { return [] }
        switch self.kind {
        case .event, .binaryEvent: return Array(items.dropFirst())
        case .ack, .binaryAck: return items
        case .connect, .disconnect, .connectError: return []
        }
    }
}

/// Why a Socket.IO packet could not be decoded. Any of them closes the connection.
public enum SocketIOCodecError: Error, Hashable, Sendable {
    /// An empty message.
    case emptyPacket
    /// A type digit outside `0`–`6`.
    case unknownPacketType
    /// A binary packet without a valid `N-` attachment count.
    case invalidAttachmentCount
    /// More attachments than allowed.
    case tooManyAttachments(limit: Int)
    /// An ack id that is not a decimal number in range.
    case invalidAckID
    /// A payload that is not JSON.
    case invalidJSON
    /// A payload that does not fit the packet type (for example an event that is not an array
    /// starting with its name).
    case invalidPayload
    /// A placeholder that does not match an attachment.
    case invalidPlaceholder
    /// A binary message that was not expected.
    case unexpectedAttachment
    /// A text packet while attachments were still expected.
    case unexpectedTextWhileReassembling
    /// The attachments of one packet add up to more bytes than allowed.
    case attachmentsTooLarge(limit: Int)

    /// A short machine-readable name, as used in the fixture stories.
    public var name: String {
        switch self {
        case .emptyPacket: return "emptyPacket"
        case .unknownPacketType: return "unknownPacketType"
        case .invalidAttachmentCount: return "invalidAttachmentCount"
        case .tooManyAttachments: return "tooManyAttachments"
        case .invalidAckID: return "invalidAckID"
        case .invalidJSON: return "invalidJSON"
        case .invalidPayload: return "invalidPayload"
        case .invalidPlaceholder: return "invalidPlaceholder"
        case .unexpectedAttachment: return "unexpectedAttachment"
        case .unexpectedTextWhileReassembling: return "unexpectedTextWhileReassembling"
        case .attachmentsTooLarge: return "attachmentsTooLarge"
        }
    }
}

/// Event names the protocol reserves; a client may not send them (socket.io-parser refuses them).
public let socketIOReservedEventNames: Set<String> = [
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
]

extension SocketIOPacket {
    /// The header of a decoded text packet, and how many binary attachments must follow it.
    public struct Decoded: Hashable, Sendable {
        /// The packet, with placeholders still in its payload when `attachments > 0`.
        public var packet: SocketIOPacket
        /// The number of binary messages that complete the packet.
        public var attachments: Int
    }

    /// Decodes the text part of a packet (header first, then the JSON payload).
    ///
    /// - Parameters:
    ///   - text: the Engine.IO message text.
    ///   - maxAttachments: the most attachments a binary packet may announce.
    /// - Returns: the packet and its attachment count.
    /// - Throws: ``SocketIOCodecError``.
    public static func decode(_ text: String, maxAttachments: Int) throws(SocketIOCodecError) -> Decoded {
        var text = text
        return try text.withUTF8 { Self.decode(utf8: $0, maxAttachments: maxAttachments) }.get()
    }

    /// Decodes valid UTF-8 text (the contents of a `String`) without copying it.
    private static func decode(
        utf8 bytes: UnsafeBufferPointer<UInt8>,
        maxAttachments: Int
    ) -> Result<Decoded, SocketIOCodecError> {
        do throws(SocketIOCodecError) {
            return .success(try Self.decodeThrowing(utf8: bytes, maxAttachments: maxAttachments))
        } catch {
            return .failure(error)
        }
    }

    private static func decodeThrowing(
        utf8 bytes: UnsafeBufferPointer<UInt8>,
        maxAttachments: Int
    ) throws(SocketIOCodecError) -> Decoded {
        guard let first = bytes.first else { throw .emptyPacket }
        guard first >= UInt8(ascii: "0"), first <= UInt8(ascii: "6"),
            let kind = Kind(rawValue: first - UInt8(ascii: "0"))
        else { throw .unknownPacketType }
        var i = 1
        var attachments = 0
        if kind == .binaryEvent || kind == .binaryAck {
            let start = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            guard i > start, i - start <= 9, i < bytes.count, bytes[i] == UInt8(ascii: "-"),
                let n = Int(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
            else { throw .invalidAttachmentCount }
            guard n <= maxAttachments else { throw .tooManyAttachments(limit: maxAttachments) }
            attachments = n
            i += 1
        }
        var namespace = "/"
        if i < bytes.count, bytes[i] == UInt8(ascii: "/") {
            let start = i
            while i < bytes.count, bytes[i] != UInt8(ascii: ",") { i += 1 }
            namespace = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            if i < bytes.count { i += 1 }  // the comma
        }
        var ackID: UInt64?
        let idStart = i
        while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
        if i > idStart {
            // At most 20 digits fit a UInt64; overflow is an invalid id.
            guard i - idStart <= 20 else { throw .invalidAckID }
            var id: UInt64 = 0
            for digit in bytes[idStart..<i] {
                let (times10, overflow1) = id.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else { throw .invalidAckID }
                id = sum
            }
            ackID = id
        }
        var payload: JSONValue?
        if i < bytes.count {
            switch JSONParser.parse(buffer: UnsafeBufferPointer(rebasing: bytes[i...]), validUTF8: true) {
            case .success(let value): payload = value
            case .failure: throw .invalidJSON
            }
        }
        let packet = SocketIOPacket(kind: kind, namespace: namespace, ackID: ackID, payload: payload)
        guard packet.hasValidPayload(attachments: attachments) else { throw .invalidPayload }
        return Decoded(packet: packet, attachments: attachments)
    }

    /// The payload rules of socket.io-parser's `isPayloadValid`.
    func hasValidPayload(attachments: Int) -> Bool {
        switch self.kind {
        case .connect:
            if let payload = self.payload, payload.objectValue == nil { return false }
            return self.ackID == nil
        case .disconnect:
            return self.payload == nil
        case .connectError:
            guard let payload = self.payload else { return false }
            return payload.stringValue != nil || payload.objectValue != nil
        case .event, .binaryEvent:
            guard case .array(let items) = self.payload, let first = items.first else { return false }
            if let name = first.stringValue { return !Self.isReserved(eventName: name) }
            return first.doubleValue != nil
        case .ack, .binaryAck:
            guard self.ackID != nil else { return false }
            return self.payload?.arrayValue != nil
        }
    }
}

extension SocketIOPacket {
    /// The wire form of a packet: its text, then one binary message per attachment.
    public struct Encoded: Hashable, Sendable {
        /// The text of the Engine.IO message.
        public var text: ByteBuffer
        /// The attachments, in `num` order.
        public var attachments: [ByteBuffer]
    }

    /// Encodes the packet. Binary values in the payload are replaced by placeholders numbered
    /// depth-first, left to right; event and ack packets with binary become binary packets.
    ///
    /// - Parameter prefix: a byte to write before the packet (the Engine.IO message type `4`, so
    ///   that the result is a ready WebSocket frame payload), or `nil`.
    /// - Returns: the text and the attachments.
    public func encode(prefix: UInt8? = nil) -> Encoded {
        self.encode(prefix: prefix, headroom: 0)
    }

    /// Encodes the packet as ``encode(prefix:)`` does, leaving `headroom` writable bytes before
    /// the text so that a transport can put its own header there without another buffer (a
    /// WebSocket frame header takes at most 10 bytes from a server).
    public func encode(prefix: UInt8?, headroom: Int) -> Encoded {
        var kind = self.kind
        let hasBinary = self.payload?.containsBinary ?? false
        if hasBinary {
            if kind == .event { kind = .binaryEvent }
            if kind == .ack { kind = .binaryAck }
        } else {
            if kind == .binaryEvent { kind = .event }
            if kind == .binaryAck { kind = .ack }
        }
        var text = ByteBufferAllocator().buffer(capacity: headroom + 128)
        if headroom > 0 {
            text.moveWriterIndex(forwardBy: headroom)
            text.moveReaderIndex(forwardBy: headroom)
        }
        if let prefix { text.writeInteger(prefix) }
        text.writeInteger(UInt8(ascii: "0") + kind.rawValue)
        guard hasBinary, let payload = self.payload else {
            // No attachments: the JSON goes straight after the header, with no intermediate copy.
            self.writeNamespaceAndID(into: &text)
            self.payload?.write(into: &text)
            return Encoded(text: text, attachments: [])
        }
        // The attachment count precedes the JSON, so the JSON is written first, aside.
        var attachments: [ByteBuffer] = []
        var body = ByteBuffer()
        payload.write(into: &body) { bytes, out in
            out.writeStaticString("{\"_placeholder\":true,\"num\":")
            out.writeString(String(attachments.count))
            out.writeInteger(UInt8(ascii: "}"))
            attachments.append(bytes)
        }
        text.writeString(String(attachments.count))
        text.writeInteger(UInt8(ascii: "-"))
        self.writeNamespaceAndID(into: &text)
        text.writeBuffer(&body)
        return Encoded(text: text, attachments: attachments)
    }

    private func writeNamespaceAndID(into text: inout ByteBuffer) {
        if self.namespace != "/" {
            text.writeString(self.namespace)
            text.writeInteger(UInt8(ascii: ","))
        }
        if let ackID = self.ackID { Self.writeDecimal(ackID, into: &text) }
    }

    private static func writeDecimal(_ value: UInt64, into text: inout ByteBuffer) {
        if value < 10 {
            text.writeInteger(UInt8(ascii: "0") + UInt8(value))
            return
        }
        // Digits from the right into a stack buffer, then one write (UInt64 has at most 20).
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            var rest = value
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            text.writeBytes(UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    /// Whether a client may not use `name` as an event name (``socketIOReservedEventNames``),
    /// with a length-and-first-byte check before the set lookup, since almost no name is reserved.
    static func isReserved(eventName name: String) -> Bool {
        switch name.utf8.count {
        case 7, 10, 11, 13, 14:
            switch name.utf8.first {
            case UInt8(ascii: "c"), UInt8(ascii: "d"), UInt8(ascii: "n"), UInt8(ascii: "r"):
                return socketIOReservedEventNames.contains(name)
            default:
                return false
            }
        default:
            return false
        }
    }
}
