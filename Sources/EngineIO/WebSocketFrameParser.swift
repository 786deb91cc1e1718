package import NIOCore
package import NIOWebSocket

/// Client frames cut straight out of the received bytes (RFC 6455 §5.2), without a decoder
/// handler or a frame object per frame.
package enum WebSocketFrameParser {
    /// One frame as received: its payload still masked (`maskKey`, network byte order) unless an
    /// extension already processed it.
    package struct Frame {
        package var fin: Bool
        package var rsv1: Bool
        package var rsv2: Bool
        package var rsv3: Bool
        package var opcode: WebSocketOpcode
        package var maskKey: UInt32?
        package var data: ByteBuffer

        /// Creates a frame.
        package init(
            fin: Bool,
            rsv1: Bool = false,
            rsv2: Bool = false,
            rsv3: Bool = false,
            opcode: WebSocketOpcode,
            maskKey: UInt32?,
            data: ByteBuffer
        ) {
            self.fin = fin
            self.rsv1 = rsv1
            self.rsv2 = rsv2
            self.rsv3 = rsv3
            self.opcode = opcode
            self.maskKey = maskKey
            self.data = data
        }

        /// The payload with the client's masking removed.
        package var unmaskedData: ByteBuffer {
            guard let key = self.maskKey else { return self.data }
            var data = self.data
            WebSocketMasking.unmask(&data, key: key)
            return data
        }
    }

    /// What cutting the next frame out of the received bytes gave.
    package enum Cut {
        case frame(Frame)
        case needMore
        /// A payload longer than the frame size limit (close 1009).
        case tooLarge
        /// A control frame that is fragmented or longer than 125 bytes (close 1002).
        case malformedControl
    }

    /// Cuts the next frame out of `buffer` (RFC 6455 §5.2), or says why not.
    package static func cut(_ buffer: inout ByteBuffer, maxFrameSize: Int) -> Cut {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self),
            let second = buffer.getInteger(at: start + 1, as: UInt8.self)
        else { return .needMore }
        var length = Int(second & 0x7F)
        var headerSize = 2
        if length == 126 {
            guard let extended = buffer.getInteger(at: start + 2, as: UInt16.self) else { return .needMore }
            length = Int(extended)
            headerSize = 4
        } else if length == 127 {
            guard let extended = buffer.getInteger(at: start + 2, as: UInt64.self) else { return .needMore }
            guard extended <= UInt64(maxFrameSize) else { return .tooLarge }
            length = Int(extended)
            headerSize = 10
        }
        guard length <= maxFrameSize else { return .tooLarge }
        let opcode = first & 0x0F
        // Control frames (opcodes 8–15) are never fragmented and carry at most 125 bytes (§5.5).
        if opcode & 0x08 != 0, first & 0x80 == 0 || length > 125 { return .malformedControl }
        var maskKey: UInt32?
        if second & 0x80 != 0 {
            guard let key = buffer.getInteger(at: start + headerSize, as: UInt32.self) else { return .needMore }
            maskKey = key
            headerSize += 4
        }
        guard buffer.readableBytes >= headerSize + length else { return .needMore }
        buffer.moveReaderIndex(forwardBy: headerSize)
        let data = buffer.readSlice(length: length)!
        return .frame(
            Frame(
                fin: first & 0x80 != 0,
                rsv1: first & 0x40 != 0,
                rsv2: first & 0x20 != 0,
                rsv3: first & 0x10 != 0,
                opcode: WebSocketOpcode(encodedWebSocketOpcode: opcode)!,
                maskKey: maskKey,
                data: data
            )
        )
    }
}

/// RFC 6455 §5.3 masking, eight bytes at a time.
package enum WebSocketMasking {
    /// XORs the readable bytes of `buffer` with `key` (the four key bytes as they appear on the
    /// wire, read as a big-endian integer), starting with the key's first byte.
    package static func unmask(_ buffer: inout ByteBuffer, key: UInt32) {
        buffer.withUnsafeMutableReadableBytes { raw in
            guard let base = raw.baseAddress else { return }
            let count = raw.count
            // The key's bytes in memory order, twice.
            let word = UInt64(UInt32(bigEndian: key))
            let wordKey = word | word << 32
            var j = 0
            while j + 8 <= count {
                let value = base.loadUnaligned(fromByteOffset: j, as: UInt64.self) ^ wordKey
                base.storeBytes(of: value, toByteOffset: j, as: UInt64.self)
                j += 8
            }
            while j < count {
                let keyByte = UInt8(truncatingIfNeeded: key >> UInt32(24 - (j & 3) * 8))
                base.storeBytes(
                    of: base.load(fromByteOffset: j, as: UInt8.self) ^ keyByte,
                    toByteOffset: j,
                    as: UInt8.self
                )
                j += 1
            }
        }
    }
}
