/// An Engine.IO request error: the HTTP status plus the error code and message that the reference
/// server puts in its JSON error body (`{"code":N,"message":"..."}`).
public struct EngineIOError: Error, Hashable, Sendable {
    /// The Engine.IO error code (0–5).
    public let code: Int
    /// The human-readable message, as the reference server words it.
    public let message: String
    /// The HTTP status code of the response.
    public let httpStatus: Int

    /// Code 0: the `transport` query parameter is missing or names a disabled transport.
    public static let unknownTransport = EngineIOError(code: 0, message: "Transport unknown", httpStatus: 400)
    /// Code 1: the `sid` is unknown, expired or closed.
    public static let unknownSid = EngineIOError(code: 1, message: "Session ID unknown", httpStatus: 400)
    /// Code 2: a handshake (no `sid`) with a method other than GET.
    public static let badHandshakeMethod = EngineIOError(code: 2, message: "Bad handshake method", httpStatus: 400)
    /// Code 3: a request that does not fit the session's state.
    public static let badRequest = EngineIOError(code: 3, message: "Bad request", httpStatus: 400)
    /// Code 4: the `allowRequest` hook refused the handshake.
    public static let forbidden = EngineIOError(code: 4, message: "Forbidden", httpStatus: 403)
    /// Code 5: `EIO` is missing or not `4`.
    public static let unsupportedProtocolVersion = EngineIOError(
        code: 5,
        message: "Unsupported protocol version",
        httpStatus: 400
    )

    /// Creates an error with a custom message (for example from an `allowRequest` hook).
    ///
    /// - Parameters:
    ///   - code: the Engine.IO error code.
    ///   - message: the message for the JSON body.
    ///   - httpStatus: the HTTP status of the response.
    public init(code: Int, message: String, httpStatus: Int) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
    }

    /// The compact JSON body of the error response.
    public var jsonBody: String {
        "{\"code\":\(self.code),\"message\":\(JSONString.quote(self.message))}"
    }
}

/// Minimal JSON string quoting for the few JSON documents Engine.IO writes itself.
public enum JSONString {
    /// Returns `s` as a JSON string literal, quotes included (RFC 8259 §7 escaping).
    ///
    /// - Parameter s: the string to quote.
    /// - Returns: the JSON literal.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }
}
