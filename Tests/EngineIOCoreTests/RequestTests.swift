import EngineIOCore
import Testing

@Suite("Request classification and handshake")
struct RequestTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var method: String
        var query: String
        var upgrade: Bool
        var expected: Result<EngineIORequestKind, EngineIOError>
        var testDescription: String { "\(self.method) ?\(self.query) upgrade=\(self.upgrade)" }
    }

    static let cases: [Case] = [
        Case(method: "GET", query: "EIO=4&transport=polling", upgrade: false, expected: .success(.pollingHandshake)),
        Case(method: "GET", query: "EIO=4&transport=websocket", upgrade: true, expected: .success(.websocketHandshake)),
        Case(
            method: "GET",
            query: "EIO=4&transport=polling&sid=a",
            upgrade: false,
            expected: .success(.poll(sid: "a"))
        ),
        Case(
            method: "POST",
            query: "EIO=4&transport=polling&sid=a",
            upgrade: false,
            expected: .success(.post(sid: "a"))
        ),
        Case(
            method: "GET",
            query: "EIO=4&transport=websocket&sid=a",
            upgrade: true,
            expected: .success(.websocketUpgrade(sid: "a"))
        ),
        Case(
            method: "GET",
            query: "transport=polling",
            upgrade: false,
            expected: .failure(.unsupportedProtocolVersion)
        ),
        Case(
            method: "GET",
            query: "EIO=abc&transport=polling",
            upgrade: false,
            expected: .failure(.unsupportedProtocolVersion)
        ),
        Case(
            method: "GET",
            query: "EIO=3&transport=polling",
            upgrade: false,
            expected: .failure(.unsupportedProtocolVersion)
        ),
        Case(method: "GET", query: "EIO=4", upgrade: false, expected: .failure(.unknownTransport)),
        Case(method: "GET", query: "EIO=4&transport=flash", upgrade: false, expected: .failure(.unknownTransport)),
        Case(method: "POST", query: "EIO=4&transport=polling", upgrade: false, expected: .failure(.badHandshakeMethod)),
        Case(method: "PUT", query: "EIO=4&transport=polling", upgrade: false, expected: .failure(.badHandshakeMethod)),
        Case(method: "GET", query: "EIO=4&transport=websocket", upgrade: false, expected: .failure(.badRequest)),
        Case(method: "PUT", query: "EIO=4&transport=polling&sid=a", upgrade: false, expected: .failure(.badRequest)),
        Case(method: "GET", query: "EIO=4&transport=websocket&sid=a", upgrade: false, expected: .failure(.badRequest)),
    ]

    @Test(arguments: cases)
    func classify(_ c: Case) {
        let result = Result { () throws(EngineIOError) -> EngineIORequestKind in
            try EngineIORequestKind.classify(
                method: c.method,
                query: EngineIOQuery(uri: "/engine.io/?" + c.query),
                isUpgrade: c.upgrade,
                transports: [.polling, .websocket],
                allowUpgrades: true
            )
        }
        #expect(result == c.expected)
    }

    @Test func disabledTransportIsUnknown() {
        #expect(throws: EngineIOError.unknownTransport) {
            try EngineIORequestKind.classify(
                method: "GET",
                query: EngineIOQuery(uri: "/?EIO=4&transport=polling"),
                isUpgrade: false,
                transports: [.websocket],
                allowUpgrades: true
            )
        }
    }

    @Test func queryDecoding() {
        let q = EngineIOQuery(uri: "/socket.io/?EIO=4&name=a%20b+c&flag&x=%zz&t=1#frag")
        #expect(q["EIO"] == "4")
        #expect(q["name"] == "a b c")
        #expect(q["flag"] == "")
        #expect(q["x"] == "%zz")
        #expect(q["t"] == "1")
        #expect(q["missing"] == nil)
        #expect(EngineIOQuery.path(of: "/socket.io/?EIO=4") == "/socket.io/")
    }

    @Test func queryItemsEncodedNamesDuplicatesAndEquality() {
        let q = EngineIOQuery(uri: "/x?&n%61me=1&&sid=a&sid=b&sp%20ace=%E2%82%AC&last#sid=c")
        #expect(q["name"] == "1")  // an encoded name matches its decoded form
        #expect(q["sid"] == "a")  // the first of duplicates; nothing after '#'
        #expect(q["sp ace"] == "€")
        #expect(q["last"] == "")
        #expect(q.items.map(\.name) == ["name", "sid", "sid", "sp ace", "last"])
        #expect(q.items.map(\.value) == ["1", "a", "b", "€", ""])
        #expect(EngineIOQuery(uri: "/a?x=1&y=2") == EngineIOQuery(uri: "/b?x=%31&y=2#f"))
        #expect(EngineIOQuery(uri: "/a?x=1&y=2") != EngineIOQuery(uri: "/a?y=2&x=1"))
        #expect(Set([EngineIOQuery(uri: "/a?x=1"), EngineIOQuery(uri: "/b?x=%31")]).count == 1)
        #expect(EngineIOQuery(uri: "/no-query").items.isEmpty)
        #expect(EngineIOQuery(uri: "/no-query")["x"] == nil)
        // Raw non-ASCII bytes before and in a match: offsets stay on character boundaries.
        let raw = EngineIOQuery(uri: "/x?é=1&clé=€uro&k=v&=empty-name&k2")
        #expect(raw["é"] == "1" && raw["clé"] == "€uro" && raw["k"] == "v" && raw[""] == "empty-name")
        #expect(raw["k2"] == "" && raw["cl"] == nil && raw["k "] == nil)
    }

    @Test func handshakeJSONIsCompactWithFiveKeysInOrder() {
        let h = EngineIOHandshake(
            sid: "abc",
            upgrades: [.websocket],
            pingInterval: 300,
            pingTimeout: 200,
            maxPayload: 1_000_000
        )
        #expect(
            h.json
                == #"{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        )
        let ws = EngineIOHandshake(sid: "a\"b", upgrades: [], pingInterval: 1, pingTimeout: 2, maxPayload: 3)
        #expect(ws.json == #"{"sid":"a\"b","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3}"#)
        let odd = EngineIOHandshake(
            sid: "\u{1}\\é",
            upgrades: [.polling, .websocket],
            pingInterval: 0,
            pingTimeout: 0,
            maxPayload: 0
        )
        #expect(
            odd.json
                == #"{"sid":"\u0001\\é","upgrades":["polling","websocket"],"pingInterval":0,"pingTimeout":0,"maxPayload":0}"#
        )
    }

    @Test func errorBodies() {
        #expect(EngineIOError.unknownSid.jsonBody == #"{"code":1,"message":"Session ID unknown"}"#)
        #expect(EngineIOError.forbidden.httpStatus == 403)
        #expect(JSONString.quote("a\n\u{1}") == #""a\n\u0001""#)
    }

    @Test func sessionIDsAreTwentyURLSafeCharacters() {
        let id = EngineIOSessionID.make(from: [UInt8](repeating: 0xFF, count: 15))
        #expect(id == String(repeating: "_", count: 20))
        #expect(EngineIOSessionID.make(from: [UInt8](0..<15)) == "AAECAwQFBgcICQoLDA0O")
        // Any collection (here one without contiguous storage) gives the same id; only 15 bytes count.
        #expect(EngineIOSessionID.make(from: (0..<20).lazy.map { UInt8($0) }) == "AAECAwQFBgcICQoLDA0O")
        #expect(EngineIOSessionID.make(from: [0xFB, 0xFF]) == "-_8A")
        #expect(EngineIOSessionID.make(from: [UInt8]()) == "")
    }
}
