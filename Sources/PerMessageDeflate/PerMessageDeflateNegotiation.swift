/// Options of permessage-deflate (RFC 7692), with defaults chosen for many mostly idle connections.
public struct PerMessageDeflateConfiguration: Sendable, Hashable {
    /// Whether to accept the extension when a client offers it. Default `true`.
    public var enabled: Bool = true
    /// Messages smaller than this many bytes are sent uncompressed. Default 1 024, Node's
    /// `perMessageDeflate.threshold`: below that, the deflate framing costs about what it saves.
    public var threshold: Int = 1024
    /// The server's LZ77 window, 9–15 bits. Default 15: the window belongs to a compressor shared
    /// by every connection of an event loop (below), so its size does not multiply by clients.
    public var serverMaxWindowBits: Int = 15
    /// zlib's memory level for compression, 1–9. Default 8 (zlib's default).
    public var memoryLevel: Int = 8
    /// zlib's compression level, 0–9. Default 6 (zlib's default).
    public var compressionLevel: Int = 6
    /// Whether the server keeps its compression context between messages. Default `false`: the
    /// response asks for `server_no_context_takeover` and `client_no_context_takeover`, so no
    /// connection keeps a sliding window between messages. An idle connection then costs no zlib
    /// memory at all, one compressor and one decompressor per event loop serve every
    /// connection, and a broadcast compresses to the same bytes for every receiver. Setting it
    /// to `true` gives better ratios for chatty connections at about 300 KiB per connection.
    public var contextTakeover: Bool = false
    /// The largest inflated message, in bytes; larger closes the WebSocket with 1009. Usually set
    /// to the endpoint's `maxPayload`. Default 1 000 000.
    public var maxDecompressedSize: Int = 1_000_000

    /// Creates a configuration with the defaults.
    public init() {}
}

/// What both sides agreed on.
public struct PerMessageDeflateParameters: Sendable, Hashable {
    /// The server resets its compressor after each message.
    public var serverNoContextTakeover: Bool
    /// The client resets its compressor after each message (so the server may reset its
    /// decompressor).
    public var clientNoContextTakeover: Bool
    /// The window the server compresses with.
    public var serverMaxWindowBits: Int

    /// Creates parameters (the handshake makes them; tests and embedders may too).
    public init(serverNoContextTakeover: Bool, clientNoContextTakeover: Bool, serverMaxWindowBits: Int) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
    }
}

/// RFC 7692 extension negotiation: parsing `Sec-WebSocket-Extensions` offers and choosing the
/// first acceptable one. Pure functions.
public enum PerMessageDeflateNegotiation {
    /// One offered extension: its name and parameters in order (value `nil` for a bare token).
    public struct Extension: Hashable, Sendable {
        /// The extension token, such as `permessage-deflate`.
        public var name: String
        /// The parameters.
        public var parameters: [Parameter]
    }

    /// One extension parameter.
    public struct Parameter: Hashable, Sendable {
        /// The parameter name.
        public var name: String
        /// The value (unquoted), or `nil`.
        public var value: String?

        /// Creates a parameter.
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }

    /// Splits header values into extensions: commas separate extensions (also within one header
    /// line), semicolons separate parameters, and quoted values may contain both.
    ///
    /// - Parameter headerValues: every `Sec-WebSocket-Extensions` value, in order.
    /// - Returns: the extensions, or `nil` for a malformed header.
    public static func parse(_ headerValues: [String]) -> [Extension]? {
        var extensions: [Extension] = []
        for value in headerValues {
            guard let items = self.splitOutsideQuotes(value, on: ",") else { return nil }
            for item in items {
                guard let parts = self.splitOutsideQuotes(item, on: ";") else { return nil }
                let name = parts[0].trimmingSpacesAndTabs
                if name.isEmpty { continue }
                var parameters: [Parameter] = []
                for part in parts.dropFirst() {
                    let piece = part.trimmingSpacesAndTabs
                    if piece.isEmpty { return nil }
                    if let eq = piece.firstIndex(of: "=") {
                        let key = String(piece[..<eq]).trimmingSpacesAndTabs
                        var raw = String(piece[piece.index(after: eq)...]).trimmingSpacesAndTabs
                        if raw.hasPrefix("\"") {
                            guard raw.count >= 2, raw.hasSuffix("\"") else { return nil }
                            raw = String(raw.dropFirst().dropLast())
                        }
                        parameters.append(Parameter(name: key, value: raw))
                    } else {
                        parameters.append(Parameter(name: piece, value: nil))
                    }
                }
                extensions.append(Extension(name: name, parameters: parameters))
            }
        }
        return extensions
    }

    /// Chooses the first acceptable permessage-deflate offer (RFC 7692 §5, §7).
    ///
    /// Offers with unknown or duplicate parameters, or window bits outside 8–15, are declined, as
    /// are offers that force `server_max_window_bits=8` (zlib refuses an 8-bit raw window).
    ///
    /// - Parameters:
    ///   - headerValues: every `Sec-WebSocket-Extensions` value of the request.
    ///   - configuration: the server's options.
    /// - Returns: the response header value and the agreed parameters, or `nil` to decline.
    public static func negotiate(
        headerValues: [String],
        configuration: PerMessageDeflateConfiguration
    ) -> (response: String, parameters: PerMessageDeflateParameters)? {
        guard configuration.enabled, let extensions = self.parse(headerValues) else { return nil }
        offers: for offer in extensions where offer.name.lowercased() == "permessage-deflate" {
            var seen = Set<String>()
            var serverNoContextTakeover = !configuration.contextTakeover
            var clientNoContextTakeover = !configuration.contextTakeover
            var serverWindow = configuration.serverMaxWindowBits
            var serverWindowRequested = false
            for parameter in offer.parameters {
                let name = parameter.name.lowercased()
                guard seen.insert(name).inserted else { continue offers }
                switch name {
                case "server_no_context_takeover":
                    guard parameter.value == nil else { continue offers }
                    serverNoContextTakeover = true
                case "client_no_context_takeover":
                    guard parameter.value == nil else { continue offers }
                    clientNoContextTakeover = true
                case "server_max_window_bits":
                    guard let bits = self.windowBits(parameter.value), bits >= 9 else { continue offers }
                    serverWindow = min(serverWindow, bits)
                    serverWindowRequested = true
                case "client_max_window_bits":
                    // A hint that the client can take a limit; the server inflates with a 15-bit
                    // window, which decodes any client window, so it sets none.
                    if parameter.value != nil, self.windowBits(parameter.value) == nil { continue offers }
                default:
                    continue offers
                }
            }
            var response = "permessage-deflate"
            if serverNoContextTakeover { response += "; server_no_context_takeover" }
            // RFC 7692 §7.1.1.2: a server may ask the client not to take over its context even
            // when the offer did not mention it.
            if clientNoContextTakeover { response += "; client_no_context_takeover" }
            if serverWindowRequested || serverWindow < 15 { response += "; server_max_window_bits=\(serverWindow)" }
            let parameters = PerMessageDeflateParameters(
                serverNoContextTakeover: serverNoContextTakeover,
                clientNoContextTakeover: clientNoContextTakeover,
                serverMaxWindowBits: serverWindow
            )
            return (response, parameters)
        }
        return nil
    }

    static func windowBits(_ value: String?) -> Int? {
        guard let value, !value.isEmpty, value.count <= 2, value.allSatisfy(\.isASCII),
            value.allSatisfy(\.isNumber), let bits = Int(value), (8...15).contains(bits), !value.hasPrefix("0")
        else { return nil }
        return bits
    }

    static func splitOutsideQuotes(_ s: String, on separator: Character) -> [String]? {
        guard let separatorByte = separator.asciiValue else { return nil }
        let bytes = s.utf8
        // Without a backslash no quoted-pair needs unescaping: the parts are slices of `s`, cut at
        // the separators outside quotes (every byte looked at is ASCII, so each cut is a character
        // boundary).
        if !bytes.contains(UInt8(ascii: "\\")) {
            var parts: [String] = []
            var quoted = false
            var start = bytes.startIndex
            var index = start
            while index != bytes.endIndex {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    quoted.toggle()
                } else if byte == separatorByte && !quoted {
                    parts.append(String(s[start..<index]))
                    start = bytes.index(after: index)
                }
                bytes.formIndex(after: &index)
            }
            guard !quoted else { return nil }
            parts.append(String(s[start...]))
            return parts
        }
        var parts: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for c in s {
            if escaped {
                current.append(c)
                escaped = false
            } else if c == "\\" && quoted {
                escaped = true
            } else if c == "\"" {
                quoted.toggle()
                current.append(c)
            } else if c == separator && !quoted {
                parts.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        guard !quoted else { return nil }
        parts.append(current)
        return parts
    }
}

extension String {
    /// The text without leading and trailing spaces and tabs.
    var trimmingSpacesAndTabs: String { self[...].trimmingSpacesAndTabs }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs (HTTP's optional whitespace), found
    /// over UTF-8 bytes: both are ASCII, so the cuts are character boundaries.
    var trimmingSpacesAndTabs: String {
        let bytes = self.utf8
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start != end, bytes[start] == 0x20 || bytes[start] == 0x09 { bytes.formIndex(after: &start) }
        while start != end {
            let last = bytes.index(before: end)
            guard bytes[last] == 0x20 || bytes[last] == 0x09 else { break }
            end = last
        }
        return String(self[start..<end])
    }
}
