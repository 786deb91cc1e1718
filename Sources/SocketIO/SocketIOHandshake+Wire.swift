import EngineIOCore
import NIOHTTP1
public import SocketIOCore

/// The handshake as Node's cluster adapters send it in a `fetchSockets` answer:
/// `{headers, time, address, xdomain, secure, issued, url, query, auth}`.
extension SocketIOHandshake {
    /// The handshake in Node's shape (header names lowercased, repeated headers joined with
    /// `, ` as Node's `req.headers` does; query parameters by name, the first value of each).
    public var jsonValue: JSONValue {
        var headers = JSONObject()
        for (name, value) in self.headers {
            let key = name.lowercased()
            if case .string(let earlier)? = headers[key] {
                headers[key] = .string(earlier + ", " + value)
            } else {
                headers[key] = .string(value)
            }
        }
        var query = JSONObject()
        for item in self.query.items where query[item.name] == nil { query[item.name] = .string(item.value) }
        var object = JSONObject()
        object["headers"] = .object(headers)
        object["time"] = .string(self.time)
        object["address"] = self.address.map(JSONValue.string) ?? .null
        object["xdomain"] = .bool(self.xdomain)
        object["secure"] = .bool(self.secure)
        object["issued"] = .number(JSONNumber(Int(self.issued)))
        object["url"] = .string(self.url)
        object["query"] = .object(query)
        object["auth"] = self.auth
        return .object(object)
    }

    /// Reads a handshake another server sent; missing fields take empty values (Node servers of
    /// other versions may send fewer).
    public init(json value: JSONValue) {
        var headers = HTTPHeaders()
        for entry in value["headers"]?.objectValue?.entries ?? [] {
            switch entry.value {
            case .string(let text): headers.add(name: entry.key, value: text)
            case .array(let items):
                for item in items { if let text = item.stringValue { headers.add(name: entry.key, value: text) } }
            default: break
            }
        }
        var queryText = ""
        for entry in value["query"]?.objectValue?.entries ?? [] {
            let values = entry.value.arrayValue ?? [entry.value]
            for item in values {
                let text = item.stringValue ?? item.jsonText
                queryText +=
                    (queryText.isEmpty ? "?" : "&") + Self.percentEncoded(entry.key) + "=" + Self.percentEncoded(text)
            }
        }
        self.init(
            headers: headers,
            query: EngineIOQuery(uri: queryText),
            auth: value["auth"]?.objectValue != nil ? value["auth"]! : .object(JSONObject()),
            address: value["address"]?.stringValue,
            secure: value["secure"]?.boolValue ?? false,
            issued: Int64(value["issued"]?.intValue ?? 0),
            url: value["url"]?.stringValue ?? "",
            xdomain: value["xdomain"]?.boolValue ?? false
        )
    }

    /// RFC 3986 percent-encoding of everything but unreserved characters.
    private static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(UnicodeScalar(hex[Int(byte >> 4)])) + String(UnicodeScalar(hex[Int(byte & 15)]))
            }
        }
        return out
    }
}
