package import EngineIOCore
package import NIOCore
import NIOHTTP1

/// Sessions driven in-process, without HTTP: what a long-polling client does, as calls. For
/// tests and tools that exercise the layers above Engine.IO (Socket.IO, adapters) without
/// sockets: the session, its timers and the application run exactly as for a real client.
extension EngineIOServer {
    /// Opens a long-polling session on `loop` (as a polling handshake from `uri` would).
    ///
    /// - Returns: the session, and the packets of the handshake answer (the open packet).
    package func openLocalSession(
        on loop: any EventLoop,
        uri: String = "/socket.io/?EIO=4&transport=polling",
        headers: [(String, String)] = []
    ) -> EventLoopFuture<(LocalEngineSession, [EngineIOPacket])> {
        loop.flatSubmit {
            let request = EngineIORequestInfo(
                method: .GET,
                uri: uri,
                query: EngineIOQuery(uri: uri),
                headers: HTTPHeaders(headers),
                remoteAddress: try? SocketAddress(ipAddress: "127.0.0.1", port: 0),
                isSecure: false,
                issuedAtMilliseconds: 0,
                transport: .polling
            )
            let answer = loop.makePromise(of: PollAnswer.self)
            guard
                let session = self.openSession(request: request, eventLoop: loop, websocket: nil, handshakePoll: answer)
            else {
                answer.fail(EngineIOError.tooManySessions)
                return loop.makeFailedFuture(EngineIOError.tooManySessions)
            }
            let local = LocalEngineSession(server: self, socket: session.handle)
            return answer.futureResult.map { (local, $0.packets) }
        }
    }
}

/// A session opened with ``EngineIOServer/openLocalSession(on:uri:headers:)``.
package struct LocalEngineSession: Sendable {
    let server: EngineIOServer
    /// The session's handle.
    package let socket: EngineIOSocket

    /// The session id.
    package var id: String { self.socket.id }

    /// Delivers packets as one POST would; completes once they were handled (failed when the
    /// session refused the POST).
    package func post(_ packets: [EngineIOPacket]) -> EventLoopFuture<Void> {
        let socket = self.socket
        let server = self.server
        return socket.eventLoop.flatSubmit {
            let promise = socket.eventLoop.makePromise(of: EngineIOError?.self)
            let session = socket.session.value
            session.inTurn(server.turn(of: socket)) {
                HTTPRequestHandler.applyPost(packets, failure: nil, to: session, promise: promise)
            }
            return promise.futureResult.flatMapThrowing { error in
                if let error { throw error }
            }
        }
    }

    /// A long-poll: completes with the next packets the server sends (at once when some wait).
    package func poll() -> EventLoopFuture<[EngineIOPacket]> {
        let socket = self.socket
        let server = self.server
        return socket.eventLoop.flatSubmit {
            let promise = socket.eventLoop.makePromise(of: PollAnswer.self)
            let session = socket.session.value
            session.inTurn(server.turn(of: socket)) { session.pollReceived(promise: promise, token: 1) }
            return promise.futureResult.map(\.packets)
        }
    }

    /// Ends the session as a client that goes away would.
    package func close() {
        self.socket.close(reason: .transportClose)
    }
}
