public import NIOCore

/// Writes MessagePack in the smallest form of each value, as notepack.io (the encoder of Node's
/// Redis adapters) does: integers in the shortest of fixint, `cc`–`cf` / `d0`–`d3` (unsigned
/// forms for non-negative values), strings `a0`/`d9`/`da`/`db`, binaries `c4`–`c6`, arrays and
/// maps fixed or `dc`/`dd` / `de`/`df`, extensions `d4`–`d8` when their size is 1, 2, 4, 8 or
/// 16, else `c7`–`c9`. Floats keep their width (`ca` or `cb`).
public enum MessagePackEncoder {
    /// Appends `value` to `buffer`.
    public static func encode(_ value: MessagePackValue, into buffer: inout ByteBuffer) {
        switch value {
        case .nil:
            buffer.writeInteger(UInt8(0xC0))
        case .bool(let flag):
            buffer.writeInteger(UInt8(flag ? 0xC3 : 0xC2))
        case .int(let number):
            if number >= 0 {
                Self.writeUnsigned(UInt64(number), into: &buffer)
            } else if number >= -32 {
                buffer.writeInteger(Int8(number))
            } else if number >= Int64(Int8.min) {
                buffer.writeInteger(UInt8(0xD0))
                buffer.writeInteger(Int8(number))
            } else if number >= Int64(Int16.min) {
                buffer.writeInteger(UInt8(0xD1))
                buffer.writeInteger(Int16(number))
            } else if number >= Int64(Int32.min) {
                buffer.writeInteger(UInt8(0xD2))
                buffer.writeInteger(Int32(number))
            } else {
                buffer.writeInteger(UInt8(0xD3))
                buffer.writeInteger(number)
            }
        case .uint(let number):
            Self.writeUnsigned(number, into: &buffer)
        case .float(let number):
            buffer.writeInteger(UInt8(0xCA))
            buffer.writeInteger(number.bitPattern)
        case .double(let number):
            buffer.writeInteger(UInt8(0xCB))
            buffer.writeInteger(number.bitPattern)
        case .string(let text):
            let count = text.utf8.count
            if count < 32 {
                buffer.writeInteger(UInt8(0xA0 | count))
            } else {
                Self.writeLength(count, codes: (0xD9, 0xDA, 0xDB), into: &buffer)
            }
            buffer.writeString(text)
        case .binary(let bytes):
            Self.writeLength(bytes.readableBytes, codes: (0xC4, 0xC5, 0xC6), into: &buffer)
            buffer.writeImmutableBuffer(bytes)
        case .array(let items):
            if items.count < 16 {
                buffer.writeInteger(UInt8(0x90 | items.count))
            } else {
                Self.writeLength(items.count, codes: nil, code16: 0xDC, code32: 0xDD, into: &buffer)
            }
            for item in items { Self.encode(item, into: &buffer) }
        case .map(let pairs):
            if pairs.count < 16 {
                buffer.writeInteger(UInt8(0x80 | pairs.count))
            } else {
                Self.writeLength(pairs.count, codes: nil, code16: 0xDE, code32: 0xDF, into: &buffer)
            }
            for pair in pairs {
                Self.encode(pair.key, into: &buffer)
                Self.encode(pair.value, into: &buffer)
            }
        case .ext(let type, let data):
            let count = data.readableBytes
            switch count {
            case 1: buffer.writeInteger(UInt8(0xD4))
            case 2: buffer.writeInteger(UInt8(0xD5))
            case 4: buffer.writeInteger(UInt8(0xD6))
            case 8: buffer.writeInteger(UInt8(0xD7))
            case 16: buffer.writeInteger(UInt8(0xD8))
            default: Self.writeLength(count, codes: (0xC7, 0xC8, 0xC9), into: &buffer)
            }
            buffer.writeInteger(type)
            buffer.writeImmutableBuffer(data)
        }
    }

    /// `value` encoded in a new buffer.
    public static func encode(_ value: MessagePackValue) -> ByteBuffer {
        var buffer = ByteBuffer()
        Self.encode(value, into: &buffer)
        return buffer
    }

    private static func writeUnsigned(_ number: UInt64, into buffer: inout ByteBuffer) {
        if number < 128 {
            buffer.writeInteger(UInt8(number))
        } else if number <= UInt64(UInt8.max) {
            buffer.writeInteger(UInt8(0xCC))
            buffer.writeInteger(UInt8(number))
        } else if number <= UInt64(UInt16.max) {
            buffer.writeInteger(UInt8(0xCD))
            buffer.writeInteger(UInt16(number))
        } else if number <= UInt64(UInt32.max) {
            buffer.writeInteger(UInt8(0xCE))
            buffer.writeInteger(UInt32(number))
        } else {
            buffer.writeInteger(UInt8(0xCF))
            buffer.writeInteger(number)
        }
    }

    /// A length with an 8-, 16- or 32-bit form (`codes`), or only 16 and 32 bits.
    private static func writeLength(
        _ count: Int,
        codes: (UInt8, UInt8, UInt8)?,
        code16: UInt8 = 0,
        code32: UInt8 = 0,
        into buffer: inout ByteBuffer
    ) {
        if let (code8, code16, code32) = codes {
            if count <= Int(UInt8.max) {
                buffer.writeInteger(code8)
                buffer.writeInteger(UInt8(count))
            } else if count <= Int(UInt16.max) {
                buffer.writeInteger(code16)
                buffer.writeInteger(UInt16(count))
            } else {
                buffer.writeInteger(code32)
                buffer.writeInteger(UInt32(count))
            }
        } else if count <= Int(UInt16.max) {
            buffer.writeInteger(code16)
            buffer.writeInteger(UInt16(count))
        } else {
            buffer.writeInteger(code32)
            buffer.writeInteger(UInt32(count))
        }
    }
}
