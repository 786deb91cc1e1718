import CSocketIOOpenSSL
import CSocketIOShims
import Foundation
import NIOCore
import NIOEmbedded
import OpenSSLTLS
import TestSupport
import Testing

/// Throwaway certificates from Fixtures/tls/generate.sh, made once per test run.
let certificateDirectory: String = {
    let directory = NSTemporaryDirectory() + "socketio-tls-\(getpid())"
    let script = Fixtures.directory.appendingPathComponent("tls/generate.sh").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [script, directory]
    process.standardOutput = FileHandle.nullDevice
    try? process.run()
    process.waitUntilExit()
    return directory
}()

/// A TLS client in memory (OpenSSL with two memory BIOs), to talk to the server handler on an
/// EmbeddedChannel without sockets.
final class MemoryTLSClient {
    let ctx: OpaquePointer
    let ssl: OpaquePointer
    let toServer: OpaquePointer
    let fromServer: OpaquePointer

    init(caFile: String) {
        self.ctx = SSL_CTX_new(TLS_client_method())!
        SSL_CTX_load_verify_locations(self.ctx, caFile, nil)
        SSL_CTX_set_verify(self.ctx, SSL_VERIFY_PEER, nil)
        self.ssl = SSL_new(self.ctx)!
        self.fromServer = BIO_new(BIO_s_mem())!
        self.toServer = BIO_new(BIO_s_mem())!
        SSL_set_bio(self.ssl, self.fromServer, self.toServer)
        SSL_set_connect_state(self.ssl)
    }

    deinit {
        SSL_free(self.ssl)
        SSL_CTX_free(self.ctx)
    }

    func handshake() -> Bool { SSL_do_handshake(self.ssl) == 1 }

    func outgoing() -> [UInt8] {
        let n = Int(CShims_BIO_pending(self.toServer))
        guard n > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: n)
        _ = BIO_read(self.toServer, &bytes, Int32(n))
        return bytes
    }

    func incoming(_ bytes: ByteBuffer) {
        bytes.withUnsafeReadableBytes { _ = BIO_write(self.fromServer, $0.baseAddress, Int32($0.count)) }
    }

    func write(_ text: String) { _ = SSL_write(self.ssl, text, Int32(text.utf8.count)) }

    func read() -> String {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = SSL_read(self.ssl, &buffer, Int32(buffer.count))
        return n > 0 ? String(decoding: buffer[0..<Int(n)], as: UTF8.self) : ""
    }

    var receivedCloseNotify: Bool { SSL_get_shutdown(self.ssl) & SSL_RECEIVED_SHUTDOWN != 0 }
}

@Suite("TLS server handler on EmbeddedChannel")
struct TLSHandlerTests {
    func makeChannel() throws -> EmbeddedChannel {
        let context = try TLSContext(
            configuration: TLSConfiguration(
                certificateChain: certificateDirectory + "/server.pem",
                privateKey: certificateDirectory + "/server.key"
            )
        )
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(TLSServerHandler(context: context))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    /// Moves bytes both ways until neither side has anything to say; client bytes go in chunks
    /// of `chunk` (1 = every byte in its own read: partial records).
    func pump(_ channel: EmbeddedChannel, _ client: MemoryTLSClient, chunk: Int) throws {
        for _ in 0..<50 {
            var moved = false
            _ = client.handshake()
            let out = client.outgoing()
            if !out.isEmpty {
                moved = true
                for start in stride(from: 0, to: out.count, by: chunk) {
                    try channel.writeInbound(ByteBuffer(bytes: out[start..<min(start + chunk, out.count)]))
                }
            }
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) {
                moved = true
                client.incoming(bytes)
            }
            if !moved { return }
        }
    }

    @Test(arguments: [1, 7, 100_000])
    func handshakeWithWritesMadeDuringIt(chunk: Int) throws {
        let channel = try self.makeChannel()
        let client = MemoryTLSClient(caFile: certificateDirectory + "/ca.pem")
        // The application writes before the handshake is done: the handler holds it.
        let early = channel.writeAndFlush(ByteBuffer(string: "early data"))
        try self.pump(channel, client, chunk: chunk)
        #expect(client.handshake())
        #expect(try early.wait() == ())
        #expect(client.read() == "early data")
        // Application data both ways.
        client.write("hello server")
        try self.pump(channel, client, chunk: chunk)
        var received = ""
        while let bytes = try channel.readInbound(as: ByteBuffer.self) { received += String(buffer: bytes) }
        #expect(received == "hello server")
        // Closing sends close_notify.
        channel.close(promise: nil)
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) { client.incoming(bytes) }
        _ = client.read()
        #expect(client.receivedCloseNotify)
    }

    @Test func plaintextHTTPGetsA400AndTheConnectionCloses() throws {
        let channel = try self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        let answer = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: answer).hasPrefix("HTTP/1.1 400 Bad Request"))
        #expect(!channel.isActive)
    }

    @Test func startupChecks() {
        let directory = certificateDirectory
        #expect(throws: TLSError.self) {
            _ = try TLSContext(
                configuration: TLSConfiguration(
                    certificateChain: directory + "/server.pem",
                    privateKey: directory + "/other.key"
                )
            )
        }
        #expect(throws: TLSError.self) {
            _ = try TLSContext(
                configuration: TLSConfiguration(
                    certificateChain: directory + "/expired.pem",
                    privateKey: directory + "/expired.key"
                )
            )
        }
        var badCiphers = TLSConfiguration(
            certificateChain: directory + "/server.pem",
            privateKey: directory + "/server.key"
        )
        badCiphers.ciphers = "NOT-A-CIPHER"
        #expect(throws: TLSError.self) { _ = try TLSContext(configuration: badCiphers) }
    }
}
