public import NIOCore

/// Incremental decoder for an Engine.IO v4 long-polling payload (a POST body).
///
/// A payload is one or more packets joined by the record separator `0x1E`. Text packets are the
/// type digit plus text; binary messages are `b` plus standard base64. The decoder is a value type:
/// push body chunks in with ``append(_:)`` as they arrive and pull packets out with
/// ``nextPacket()``; call ``finish()`` at the end of the body for the last packet. The size limit
/// is enforced while bytes are still arriving, so an oversized body fails before it is buffered.
public struct EngineIOPayloadDecoder: Sendable {
    /// The largest payload accepted, in bytes (Engine.IO's `maxPayload`).
    public let maxPayload: Int

    private var buffer: ByteBuffer
    private var received: Int = 0
    private var producedAny = false

    /// Creates a decoder.
    ///
    /// - Parameter maxPayload: the largest total payload accepted, in bytes.
    public init(maxPayload: Int) {
        self.maxPayload = maxPayload
        self.buffer = ByteBuffer()
    }

    /// Appends a chunk of the body.
    ///
    /// - Parameter bytes: the next bytes of the body.
    /// - Throws: ``EngineIOCodecError/payloadTooLarge(limit:)`` once the body exceeds ``maxPayload``.
    public mutating func append(_ bytes: ByteBuffer) throws(EngineIOCodecError) {
        self.received += bytes.readableBytes
        guard self.received <= self.maxPayload else { throw .payloadTooLarge(limit: self.maxPayload) }
        if self.buffer.readableBytes == 0 {
            self.buffer = bytes
        } else {
            var bytes = bytes
            self.buffer.writeBuffer(&bytes)
        }
    }

    /// Returns the next complete packet (one followed by a separator), or `nil` when more bytes or
    /// the end of the body are needed.
    ///
    /// - Returns: the next packet, if a whole one is buffered.
    /// - Throws: ``EngineIOCodecError`` for a malformed packet.
    public mutating func nextPacket() throws(EngineIOCodecError) -> EngineIOPacket? {
        guard let index = self.buffer.readableBytesView.firstIndex(of: 0x1E) else { return nil }
        let length = index - self.buffer.readerIndex
        let record = self.buffer.readSlice(length: length)!
        self.buffer.moveReaderIndex(forwardBy: 1)
        self.producedAny = true
        return try Self.decodeRecord(record.readableBytesView)
    }

    /// Ends the body and returns its last packet.
    ///
    /// - Returns: the last packet of the payload.
    /// - Throws: ``EngineIOCodecError/emptyPacket`` when the body (or its last record) is empty, or
    ///   another ``EngineIOCodecError`` for a malformed packet.
    public mutating func finish() throws(EngineIOCodecError) -> EngineIOPacket {
        let record = self.buffer
        self.buffer = ByteBuffer()
        self.producedAny = true
        return try Self.decodeRecord(record.readableBytesView)
    }

    /// Decodes a whole payload at once.
    ///
    /// - Parameters:
    ///   - payload: the body.
    ///   - maxPayload: the largest total payload accepted.
    /// - Returns: the packets, in order.
    /// - Throws: ``EngineIOCodecError`` for an oversized or malformed payload.
    public static func decode(
        _ payload: ByteBuffer,
        maxPayload: Int = .max
    ) throws(EngineIOCodecError)
        -> [EngineIOPacket]
    {
        var decoder = EngineIOPayloadDecoder(maxPayload: maxPayload)
        try decoder.append(payload)
        var packets: [EngineIOPacket] = []
        while let packet = try decoder.nextPacket() { packets.append(packet) }
        packets.append(try decoder.finish())
        return packets
    }

    static func decodeRecord(_ record: ByteBufferView) throws(EngineIOCodecError) -> EngineIOPacket {
        guard let first = record.first else { throw .emptyPacket }
        if first == UInt8(ascii: "b") {
            guard let bytes = Base64.decode(record.dropFirst()) else { throw .invalidBase64 }
            return .binaryMessage(bytes)
        }
        guard String(validating: record, as: UTF8.self) != nil else { throw .invalidUTF8 }
        return try EngineIOPacket.decodeText(record)
    }
}

/// Encoder for Engine.IO v4 long-polling payloads (a GET response body).
public enum EngineIOPayloadEncoder {
    /// Writes `packets` joined by the record separator `0x1E` (no trailing separator).
    ///
    /// - Parameters:
    ///   - packets: the packets, in order.
    ///   - buffer: the buffer to append to.
    public static func encode<Packets: Sequence>(_ packets: Packets, into buffer: inout ByteBuffer)
    where Packets.Element == EngineIOPacket {
        var first = true
        for packet in packets {
            if !first { buffer.writeInteger(UInt8(0x1E)) }
            first = false
            packet.writeText(into: &buffer)
        }
    }
}
