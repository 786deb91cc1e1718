public import NIOCore

/// Writes Redis commands (an array of bulk strings, the only form a client sends) and, for
/// tests and tools, any ``RESPValue``.
public enum RESPEncoder {
    /// Appends the command `arguments` (`*N`, then each as `$len`).
    public static func command(_ arguments: [ByteBuffer], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        Self.writeDecimal(arguments.count, into: &buffer)
        for argument in arguments {
            buffer.writeInteger(UInt8(ascii: "$"))
            Self.writeDecimal(argument.readableBytes, into: &buffer)
            buffer.writeImmutableBuffer(argument)
            buffer.writeStaticString("\r\n")
        }
    }

    /// Appends the command `arguments`, given as text.
    public static func command(_ arguments: [String], into buffer: inout ByteBuffer) {
        Self.command(arguments.map { ByteBuffer(string: $0) }, into: &buffer)
    }

    /// Appends `value` in its RESP form.
    public static func encode(_ value: RESPValue, into buffer: inout ByteBuffer) {
        switch value {
        case .simpleString(let text): Self.line("+", text, into: &buffer)
        case .error(let text): Self.line("-", text, into: &buffer)
        case .integer(let number): Self.line(":", String(number), into: &buffer)
        case .bulkString(let bytes): Self.blob("$", bytes, into: &buffer)
        case .array(let items): Self.aggregate("*", items, into: &buffer)
        case .null: buffer.writeStaticString("_\r\n")
        case .boolean(let flag): buffer.writeStaticString(flag ? "#t\r\n" : "#f\r\n")
        case .double(let number):
            let text = number.isNaN ? "nan" : number == .infinity ? "inf" : number == -.infinity ? "-inf" : "\(number)"
            Self.line(",", text, into: &buffer)
        case .bigNumber(let text): Self.line("(", text, into: &buffer)
        case .bulkError(let text): Self.blob("!", ByteBuffer(string: text), into: &buffer)
        case .verbatimString(let format, let text):
            var bytes = ByteBuffer(string: format + ":")
            bytes.writeImmutableBuffer(text)
            Self.blob("=", bytes, into: &buffer)
        case .map(let pairs):
            buffer.writeInteger(UInt8(ascii: "%"))
            Self.writeDecimal(pairs.count, into: &buffer)
            for pair in pairs {
                Self.encode(pair.key, into: &buffer)
                Self.encode(pair.value, into: &buffer)
            }
        case .set(let items): Self.aggregate("~", items, into: &buffer)
        case .push(let items): Self.aggregate(">", items, into: &buffer)
        }
    }

    private static func line(_ type: Unicode.Scalar, _ text: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: type))
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
    }

    private static func blob(_ type: Unicode.Scalar, _ bytes: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: type))
        Self.writeDecimal(bytes.readableBytes, into: &buffer)
        buffer.writeImmutableBuffer(bytes)
        buffer.writeStaticString("\r\n")
    }

    private static func aggregate(_ type: Unicode.Scalar, _ items: [RESPValue], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: type))
        Self.writeDecimal(items.count, into: &buffer)
        for item in items { Self.encode(item, into: &buffer) }
    }

    /// A count and CR LF.
    private static func writeDecimal(_ number: Int, into buffer: inout ByteBuffer) {
        buffer.writeString(String(number))
        buffer.writeStaticString("\r\n")
    }
}
