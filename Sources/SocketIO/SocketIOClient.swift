import EngineIO
import EngineIOCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SocketIOCore

/// One Engine.IO connection as Socket.IO sees it: the namespaces it joined, the binary packet
/// being reassembled, and the connect timeout. Confined to the connection's event loop; the
/// Engine.IO session keeps it as its attachment.
final class SocketIOClient: LoopTimerTarget {
    let engine: EngineIOSocket
    let server: SocketIOServerCore
    private var reassembler: SocketIOPacketReassembler
    private var sockets: [String: SocketIOSocket] = [:]
    private var connecting: Set<String> = []
    private let connectTimer = LoopTimer()
    /// Bounds the time a binary packet's attachments take to arrive; made for the first one.
    private var attachmentTimer: LoopTimer?
    private var closed = false

    init(engine: EngineIOSocket, server: SocketIOServerCore) {
        self.engine = engine
        self.server = server
        self.reassembler = SocketIOPacketReassembler(
            maxAttachments: server.configuration.maxAttachments,
            maxAttachmentBytes: server.configuration.maxAttachmentBytes
        )
    }

    func opened() {
        // Socket.IO v5: a connection that joins no namespace in time is closed.
        self.connectTimer.arm(
            at: .now() + self.server.configuration.connectTimeout,
            on: self.engine.eventLoop,
            target: self
        )
    }

    func loopTimerFired(_ timer: LoopTimer) {
        if timer === self.attachmentTimer {
            // A packet's attachments stopped coming: drop what arrived and end the connection.
            guard self.reassembler.isReassembling else { return }
            self.reassembler.reset()
            self.protocolError()
        } else if self.sockets.isEmpty {
            self.engine.close()
        }
    }

    // MARK: Incoming

    func textReceived(_ text: String) {
        do {
            switch try self.reassembler.textReceived(text) {
            case .complete(let packet):
                self.handle(packet)
            case .needsAttachments:
                let timer = self.attachmentTimer ?? LoopTimer()
                self.attachmentTimer = timer
                timer.arm(
                    at: self.engine.eventLoop.now + self.server.configuration.attachmentTimeout,
                    on: self.engine.eventLoop,
                    target: self
                )
            }
        } catch {
            self.protocolError()
        }
    }

    func binaryReceived(_ bytes: ByteBuffer) {
        do {
            switch try self.reassembler.binaryReceived(bytes) {
            case .complete(let packet):
                self.attachmentTimer?.cancel()
                self.handle(packet)
            case .needsAttachments:
                break
            }
        } catch {
            self.attachmentTimer?.cancel()
            self.protocolError()
        }
    }

    private func handle(_ packet: SocketIOPacket) {
        switch packet.kind {
        case .connect:
            self.connect(packet)
        case .disconnect:
            self.disconnect(namespace: packet.namespace, reason: .clientNamespaceDisconnect, tellClient: false)
        case .connectError:
            self.protocolError()  // only servers send it
        case .event, .binaryEvent, .ack, .binaryAck:
            if let socket = self.sockets[packet.namespace] {
                socket.received(packet)
            } else if self.sockets.isEmpty && self.connecting.isEmpty {
                // The first thing a client sends must be a CONNECT.
                self.protocolError()
            }
        }
    }

    /// Any Socket.IO protocol error closes the whole connection at once.
    private func protocolError() {
        self.engine.close(reason: .parseError)
    }

    // MARK: Connecting

    private func connect(_ packet: SocketIOPacket) {
        let name = packet.namespace
        guard self.sockets[name] == nil, !self.connecting.contains(name) else { return }
        let auth = packet.payload ?? .object(JSONObject())
        guard let namespace = self.server.namespace(named: name, auth: auth) else {
            self.send(SocketIOPacket(kind: .connectError, namespace: name, payload: ["message": "Invalid namespace"]))
            return
        }
        let socket = SocketIOSocket(
            id: self.server.configuration.engine.sessionIDGenerator(),
            namespace: namespace,
            handshake: self.handshake(auth: auth),
            engine: self.engine
        )
        let middleware = namespace.handlers.lists.withLockedValue { $0.middleware }
        if middleware.isEmpty {
            self.accept(socket)
            return
        }
        self.connecting.insert(name)
        Self.connectAfterMiddleware(middleware, socket: socket, engine: self.engine)
    }

    /// Runs async middleware off the loop, then finishes the connection back on it.
    private static func connectAfterMiddleware(
        _ middleware: [@Sendable (SocketIOSocket) async throws -> Void],
        socket: SocketIOSocket,
        engine: EngineIOSocket
    ) {
        Task {
            let refusal = await Self.runMiddleware(middleware, on: socket)
            engine.eventLoop.execute {
                (engine.attachment as? SocketIOClient)?.middlewareFinished(socket: socket, refusal: refusal)
            }
        }
    }

    private func middlewareFinished(socket: SocketIOSocket, refusal: SocketIOConnectError?) {
        let name = socket.namespace.name
        self.connecting.remove(name)
        if let refusal {
            var payload = JSONObject([("message", .string(refusal.message))])
            if let data = refusal.data { payload["data"] = data }
            self.send(SocketIOPacket(kind: .connectError, namespace: name, payload: .object(payload)))
        } else {
            self.accept(socket)
        }
    }

    private static func runMiddleware(
        _ middleware: [@Sendable (SocketIOSocket) async throws -> Void],
        on socket: SocketIOSocket
    ) async -> SocketIOConnectError? {
        for step in middleware {
            do {
                try await step(socket)
            } catch let error as SocketIOConnectError {
                return error
            } catch {
                return SocketIOConnectError("\(error)")
            }
        }
        return nil
    }

    private func accept(_ socket: SocketIOSocket) {
        guard !self.closed else { return }
        let namespace = socket.namespace
        self.sockets[namespace.name] = socket
        self.connectTimer.cancel()
        socket.markConnected()
        namespace.adapter.add(socket)
        self.send(SocketIOPacket(kind: .connect, namespace: namespace.name, payload: ["sid": .string(socket.id)]))
        let handlers = namespace.handlers.lists.withLockedValue { $0.connection }
        for handler in handlers { handler(socket) }
    }

    private func handshake(auth: JSONValue) -> SocketIOHandshake {
        let request = self.engine.request
        let origin = request.headers.first(name: "origin")
        let host = request.headers.first(name: "host")
        return SocketIOHandshake(
            headers: request.headers,
            query: request.query,
            auth: auth.objectValue != nil ? auth : .object(JSONObject()),
            address: request.remoteAddress?.ipAddress,
            secure: request.isSecure,
            issued: request.issuedAtMilliseconds,
            url: request.uri,
            xdomain: origin != nil && !(origin!.hasSuffix("://" + (host ?? "")))
        )
    }

    // MARK: Disconnecting

    func disconnect(namespace name: String, reason: SocketIODisconnectReason, tellClient: Bool) {
        guard let socket = self.sockets.removeValue(forKey: name) else { return }
        if tellClient { self.send(SocketIOPacket(kind: .disconnect, namespace: name)) }
        socket.closed(reason: reason)
    }

    func disconnectAll(reason: SocketIODisconnectReason) {
        for name in Array(self.sockets.keys) { self.disconnect(namespace: name, reason: reason, tellClient: true) }
    }

    func closed(reason: EngineIOCloseReason) {
        self.closed = true
        self.connectTimer.cancel()
        self.attachmentTimer?.cancel()
        self.reassembler.reset()
        let socketReason = Self.reason(for: reason)
        let sockets = self.sockets
        self.sockets = [:]
        for socket in sockets.values { socket.closed(reason: socketReason) }
    }

    static func reason(for reason: EngineIOCloseReason) -> SocketIODisconnectReason {
        switch reason {
        case .transportClose: return .transportClose
        case .pingTimeout: return .pingTimeout
        case .parseError: return .parseError
        case .serverShutdown: return .serverShuttingDown
        case .forcedClose: return .forcedClose
        case .bufferFull: return .transportBufferFull
        case .payloadTooLarge: return .payloadTooLarge
        default: return .transportError
        }
    }

    private func send(_ packet: SocketIOPacket) {
        let encoded = OutgoingPacket(packet)
        self.engine.send(encodedText: encoded.frame, attachments: encoded.attachments)
    }
}

@available(*, unavailable)
extension SocketIOClient: Sendable {}
