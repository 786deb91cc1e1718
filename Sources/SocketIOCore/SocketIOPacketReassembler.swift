public import NIOCore

/// Puts binary packets back together: a text packet announcing N attachments, then N binary
/// messages. A value type with no I/O; the connection keeps one.
public struct SocketIOPacketReassembler: Sendable {
    /// What the reassembler needs next.
    public enum Result: Hashable, Sendable {
        /// A whole packet, binaries in place.
        case complete(SocketIOPacket)
        /// This many more binary messages are needed.
        case needsAttachments(Int)
    }

    private var pending: SocketIOPacket?
    private var expected = 0
    private var received: [ByteBuffer] = []
    private var receivedBytes = 0
    /// The most attachments a packet may announce.
    public let maxAttachments: Int
    /// The most bytes the attachments of one packet may add up to.
    public let maxAttachmentBytes: Int

    /// Creates a reassembler.
    ///
    /// - Parameters:
    ///   - maxAttachments: the most attachments per packet.
    ///   - maxAttachmentBytes: the most bytes one packet's attachments may add up to; the
    ///     attachment that would exceed it is refused (and nothing is kept) while the rest may
    ///     still be arriving.
    public init(maxAttachments: Int, maxAttachmentBytes: Int = .max) {
        self.maxAttachments = maxAttachments
        self.maxAttachmentBytes = maxAttachmentBytes
    }

    /// Whether attachments are still expected.
    public var isReassembling: Bool { self.pending != nil }

    /// The bytes of the attachments received for the packet being reassembled.
    public var bufferedBytes: Int { self.receivedBytes }

    /// A text message arrived.
    ///
    /// - Parameter text: the Engine.IO message text.
    /// - Returns: the packet, or how many attachments must follow.
    /// - Throws: ``SocketIOCodecError``.
    public mutating func textReceived(_ text: String) throws(SocketIOCodecError) -> Result {
        guard self.pending == nil else { throw .unexpectedTextWhileReassembling }
        let decoded = try SocketIOPacket.decode(text, maxAttachments: self.maxAttachments)
        if decoded.attachments == 0 {
            if decoded.packet.kind.isBinary {
                return .complete(try Self.fill(decoded.packet, with: []))
            }
            return .complete(decoded.packet)
        }
        self.pending = decoded.packet
        self.expected = decoded.attachments
        self.received = []
        self.receivedBytes = 0
        self.received.reserveCapacity(decoded.attachments)
        return .needsAttachments(decoded.attachments)
    }

    /// A binary message arrived.
    ///
    /// - Parameter bytes: the attachment.
    /// - Returns: the packet once complete, or how many attachments are still needed.
    /// - Throws: ``SocketIOCodecError``.
    public mutating func binaryReceived(_ bytes: ByteBuffer) throws(SocketIOCodecError) -> Result {
        guard let packet = self.pending else { throw .unexpectedAttachment }
        guard bytes.readableBytes <= self.maxAttachmentBytes - self.receivedBytes else {
            self.reset()
            throw .attachmentsTooLarge(limit: self.maxAttachmentBytes)
        }
        self.receivedBytes += bytes.readableBytes
        self.received.append(bytes)
        guard self.received.count == self.expected else {
            return .needsAttachments(self.expected - self.received.count)
        }
        let attachments = self.received
        self.reset()
        return .complete(try Self.fill(packet, with: attachments))
    }

    /// Drops the packet being reassembled and its attachments (its time ran out, or the
    /// connection closed).
    public mutating func reset() {
        self.pending = nil
        self.expected = 0
        self.received = []
        self.receivedBytes = 0
    }

    static func fill(
        _ packet: SocketIOPacket,
        with attachments: [ByteBuffer]
    ) throws(SocketIOCodecError)
        -> SocketIOPacket
    {
        var packet = packet
        if let payload = packet.payload {
            packet.payload = try payload.replacingPlaceholders(attachments)
        }
        return packet
    }
}

extension SocketIOPacket.Kind {
    /// Whether the type carries attachments.
    public var isBinary: Bool { self == .binaryEvent || self == .binaryAck }
}

extension JSONValue {
    var placeholderNumber: Int?? {
        guard case .object(let object) = self, object.count == 2, object["_placeholder"] == .bool(true) else {
            return nil
        }
        return .some(object["num"]?.intValue)
    }

    var containsPlaceholder: Bool {
        if self.placeholderNumber != nil { return true }
        switch self {
        case .array(let items): return items.contains { $0.containsPlaceholder }
        case .object(let object): return object.entries.contains { $0.value.containsPlaceholder }
        case .null, .bool, .number, .string, .binary: return false
        }
    }

    func replacingPlaceholders(_ attachments: [ByteBuffer]) throws(SocketIOCodecError) -> JSONValue {
        if let number = self.placeholderNumber {
            guard let n = number, n >= 0, n < attachments.count else { throw .invalidPlaceholder }
            return .binary(attachments[n])
        }
        switch self {
        case .array(let items):
            var out: [JSONValue] = []
            out.reserveCapacity(items.count)
            for item in items { out.append(try item.replacingPlaceholders(attachments)) }
            return .array(out)
        case .object(let object):
            // The keys stay distinct: no lookups (a large object stays linear).
            var out: [JSONObject.Entry] = []
            out.reserveCapacity(object.count)
            for entry in object.entries {
                out.append(JSONObject.Entry(key: entry.key, value: try entry.value.replacingPlaceholders(attachments)))
            }
            return .object(JSONObject(distinctEntries: out))
        case .null, .bool, .number, .string, .binary:
            return self
        }
    }
}
