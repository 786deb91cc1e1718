import EngineIO
import EngineIOCore
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

// The README's embedding example, compiled here so that it cannot rot.

struct Shout: EngineIOApplication {
    func sessionOpened(_ socket: EngineIOSocket) { socket.send("welcome") }
    func textReceived(_ text: String, from socket: EngineIOSocket) { socket.send(text.uppercased()) }
    func binaryReceived(_ bytes: ByteBuffer, from socket: EngineIOSocket) { socket.send(bytes) }
    func sessionClosed(_ socket: EngineIOSocket, reason: EngineIOCloseReason) {
        print("\(socket.id) closed: \(reason)")
    }
}

func readmeExampleConfiguration() -> (HTTPServer.Configuration, EngineIOConfiguration) {
    var engine = EngineIOConfiguration()  // Node's defaults
    engine.path = "/engine.io/"
    engine.cors = CORSConfiguration(origins: .list(["https://app.example"]), credentials: true)
    engine.allowRequest = { request in request.headers.first(name: "x-api-key") == "secret" }
    var http = HTTPServer.Configuration()
    http.port = 3000
    return (http, engine)
}

@Suite("README example", .timeLimit(.minutes(1)))
struct ReadmeExampleTests {
    @Test func exampleServesWelcomeAndShouts() async throws {
        var (_, engine) = readmeExampleConfiguration()
        #expect(engine.pingInterval == .seconds(25))
        #expect(engine.pingTimeout == .seconds(20))
        #expect(engine.maxPayload == 1_000_000)
        engine.allowRequest = nil
        let server = EngineIOServer(configuration: engine, application: Shout())
        try await withServer([server]) { port in
            let r = try await blocking { try RawHTTP.request(port: port, "GET", handshakePath) }
            let id = try #require(sid(of: r.body))
            let path = "/engine.io/?EIO=4&transport=polling&sid=\(id)"
            let welcome = try await blocking { try RawHTTP.request(port: port, "GET", path) }
            #expect(welcome.body == "4welcome")
            _ = try await blocking { try RawHTTP.request(port: port, "POST", path, body: "4hey") }
            let shout = try await blocking { try RawHTTP.request(port: port, "GET", path) }
            #expect(shout.body == "4HEY")
        }
    }
}
