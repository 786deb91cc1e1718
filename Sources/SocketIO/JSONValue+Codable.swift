public import Foundation
import NIOCore
import NIOFoundationCompat
public import SocketIOCore

extension JSONValue {
    /// Encodes an `Encodable` value with `JSONEncoder` (keys sorted, so the output is the same on
    /// every platform; `Data` as base64 text; use ``JSONValue/binary(_:)`` for real binary
    /// attachments).
    ///
    /// - Throws: when the value does not encode.
    public init<T: Encodable>(encoding value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        self = try JSONParser.parse(data)
    }

    /// Decodes this value as `T` with `JSONDecoder` (binary values read as base64 text).
    ///
    /// - Throws: when it does not decode.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        var buffer = ByteBuffer()
        self.write(into: &buffer) { bytes, out in
            out.writeString("\"" + Data(bytes.readableBytesView).base64EncodedString() + "\"")
        }
        return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
    }
}

extension JSONValue {
    /// A binary argument from Foundation `Data` (sent as an attachment).
    ///
    /// - Parameter data: the bytes.
    /// - Returns: the binary value.
    public static func data(_ data: Data) -> JSONValue {
        .binary(ByteBuffer(data: data))
    }

    /// The bytes as Foundation `Data`, if this is binary.
    public var dataValue: Data? {
        guard case .binary(let bytes) = self else { return nil }
        return Data(bytes.readableBytesView)
    }
}
