public import NIOCore

/// One Engine.IO protocol v4 packet.
///
/// Engine.IO v4 has seven packet types, written as one ASCII digit (`0` open … `6` noop) followed by
/// an optional text payload. Binary data only ever travels as a message, so binary messages get
/// their own case: on a WebSocket they are a binary frame, in a polling payload `b` plus base64.
public enum EngineIOPacket: Hashable, Sendable {
    /// `0`: the handshake, carrying the handshake JSON object.
    case open(String)
    /// `1`: the session is closing.
    case close
    /// `2`: a heartbeat ping (server → client) or an upgrade probe (`2probe`, client → server).
    case ping(String)
    /// `3`: the answer to a ping (`3`), or to an upgrade probe (`3probe`).
    case pong(String)
    /// `4`: a text message for the application.
    case message(String)
    /// A binary message for the application (no type digit on the wire).
    case binaryMessage(ByteBuffer)
    /// A text message already in its wire form, type digit `4` included. Never produced by the
    /// decoder: it lets one encoded buffer go to many receivers without copying.
    case encodedMessage(ByteBuffer)
    /// `5`: the client finished upgrading to WebSocket.
    case upgrade
    /// `6`: no operation; used to finish a pending long-poll.
    case noop

    /// The type digit of a text packet, or `nil` for a binary message.
    public var typeDigit: UInt8? {
        switch self {
        case .open: return UInt8(ascii: "0")
        case .close: return UInt8(ascii: "1")
        case .ping: return UInt8(ascii: "2")
        case .pong: return UInt8(ascii: "3")
        case .message, .encodedMessage: return UInt8(ascii: "4")
        case .binaryMessage: return nil
        case .upgrade: return UInt8(ascii: "5")
        case .noop: return UInt8(ascii: "6")
        }
    }

    /// The text payload that follows the type digit (empty for binary messages and bare packets).
    public var textPayload: String {
        switch self {
        case .open(let s), .ping(let s), .pong(let s), .message(let s): return s
        case .close, .upgrade, .noop, .binaryMessage: return ""
        case .encodedMessage(let bytes): return String(decoding: bytes.readableBytesView.dropFirst(), as: UTF8.self)
        }
    }

    /// The packet's size on the wire, in bytes (for buffer limits).
    public var wireSize: Int {
        switch self {
        case .binaryMessage(let bytes), .encodedMessage(let bytes): return bytes.readableBytes
        case .open(let s), .ping(let s), .pong(let s), .message(let s): return s.utf8.count + 1
        case .close, .upgrade, .noop: return 1
        }
    }

    /// Decodes one text packet, such as the content of a WebSocket text frame (Engine.IO v4:
    /// one packet per frame).
    ///
    /// - Parameter bytes: the UTF-8 bytes of the packet, type digit first.
    /// - Returns: the decoded packet.
    /// - Throws: ``EngineIOCodecError`` when the text is empty or starts with an unknown type digit.
    public static func decodeText(_ bytes: ByteBufferView) throws(EngineIOCodecError) -> EngineIOPacket {
        guard let first = bytes.first else { throw .emptyPacket }
        let rest = bytes.dropFirst()
        switch first {
        case UInt8(ascii: "0"): return .open(String(decoding: rest, as: UTF8.self))
        case UInt8(ascii: "1"): return .close
        case UInt8(ascii: "2"): return .ping(String(decoding: rest, as: UTF8.self))
        case UInt8(ascii: "3"): return .pong(String(decoding: rest, as: UTF8.self))
        case UInt8(ascii: "4"): return .message(String(decoding: rest, as: UTF8.self))
        case UInt8(ascii: "5"): return .upgrade
        case UInt8(ascii: "6"): return .noop
        default: throw .unknownPacketType(first)
        }
    }

    /// Decodes one text packet from a string.
    ///
    /// - Parameter text: the packet, type digit first.
    /// - Returns: the decoded packet.
    /// - Throws: ``EngineIOCodecError`` when the text is empty or starts with an unknown type digit.
    public static func decodeText(_ text: String) throws(EngineIOCodecError) -> EngineIOPacket {
        try decodeText(ByteBuffer(string: text).readableBytesView)
    }

    /// Writes this packet as text (type digit then payload) into `buffer`.
    ///
    /// Binary messages are written as `b` plus standard base64, the form they take inside a
    /// polling payload.
    ///
    /// - Parameter buffer: the buffer to append to.
    public func writeText(into buffer: inout ByteBuffer) {
        switch self {
        case .binaryMessage(let bytes):
            buffer.writeInteger(UInt8(ascii: "b"))
            Base64.encode(bytes.readableBytesView, into: &buffer)
        case .encodedMessage(var bytes):
            buffer.writeBuffer(&bytes)
        case .open(let s), .ping(let s), .pong(let s), .message(let s):
            buffer.writeInteger(self.typeDigit!)
            buffer.writeString(s)
        case .close, .upgrade, .noop:
            buffer.writeInteger(self.typeDigit!)
        }
    }

    /// The packet's text form as a string (see ``writeText(into:)``).
    public var text: String {
        var buffer = ByteBuffer()
        self.writeText(into: &buffer)
        return String(buffer: buffer)
    }
}

/// Why a packet or payload could not be decoded.
public enum EngineIOCodecError: Error, Hashable, Sendable {
    /// A packet with no bytes at all.
    case emptyPacket
    /// A first byte that is not one of the type digits `0`–`6` (nor `b` in a polling payload).
    case unknownPacketType(UInt8)
    /// A `b` record in a polling payload whose base64 is malformed.
    case invalidBase64
    /// A payload that is not valid UTF-8.
    case invalidUTF8
    /// A payload larger than the configured maximum.
    case payloadTooLarge(limit: Int)

    /// A short machine-readable name, as used in the fixture stories.
    public var name: String {
        switch self {
        case .emptyPacket: return "emptyPacket"
        case .unknownPacketType: return "unknownPacketType"
        case .invalidBase64: return "invalidBase64"
        case .invalidUTF8: return "invalidUTF8"
        case .payloadTooLarge: return "payloadTooLarge"
        }
    }
}
