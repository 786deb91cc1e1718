import Foundation
import NIOCore
import SocketIOCore
import Testing

/// The word-at-a-time and single-write fast paths of the codecs, against plain references.
@Suite struct FastPathTests {
    /// JSON string escaping as RFC 8259 asks, byte by byte.
    private func reference(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{00}"..."\u{1F}": out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    @Test func stringEscapingAtEveryPositionAndLength() throws {
        let specials: [Character] = ["\"", "\\", "\n", "\u{01}", "\u{1F}", "\t"]
        let fillers: [Character] = ["a", "é", " ", "~", "\u{7F}"]
        for length in 0...40 {
            for filler in fillers {
                let plain = String(repeating: filler, count: length)
                #expect(JSONValue.string(plain).jsonText == self.reference(plain))
                for position in stride(from: 0, to: length, by: 3) {
                    for special in specials {
                        var characters = Array(plain)
                        characters[position] = special
                        let s = String(characters)
                        let text = JSONValue.string(s).jsonText
                        #expect(text == self.reference(s), "length \(length) position \(position)")
                        #expect(try JSONParser.parse(text) == .string(s))
                    }
                }
            }
        }
    }

    @Test func ackIDsOfEveryDigitCount() throws {
        var ids: [UInt64] = [0, 1, 9, 10, 11, 99, 100, 12_345, UInt64.max]
        var power: UInt64 = 1
        for _ in 0..<19 {
            ids += [power, power - 1, power + 7]
            power *= 10
        }
        for id in ids {
            let encoded = SocketIOPacket(kind: .ack, ackID: id, payload: .array([.string("x")])).encode()
            #expect(String(buffer: encoded.text) == "3\(id)[\"x\"]")
            let decoded = try SocketIOPacket.decode(String(buffer: encoded.text), maxAttachments: 0)
            #expect(decoded.packet.ackID == id)
        }
    }

    @Test func reservedEventNamesAreRefusedAndLookalikesAccepted() throws {
        for name in socketIOReservedEventNames {
            #expect(throws: SocketIOCodecError.self) {
                try SocketIOPacket.decode("2[\"\(name)\"]", maxAttachments: 0)
            }
        }
        for name in ["connects", "connec", "Connect", "disconnectin", "newlistener", "removeListeners", "c", "rooms"] {
            let decoded = try SocketIOPacket.decode("2[\"\(name)\"]", maxAttachments: 0)
            #expect(decoded.packet.payload == .array([.string(name)]))
        }
    }
}
