package import EngineIOCore
import Logging
import NIOConcurrencyHelpers
package import NIOCore
import NIOWebSocket
import PerMessageDeflate
import Synchronization

/// One Engine.IO session, confined to the event loop chosen at its handshake.
///
/// It drives the pure ``EngineIOTransportStateMachine`` and ``EngineIOHeartbeatStateMachine`` and
/// performs their actions: answering long-polls, writing WebSocket frames, arming timers and
/// telling the application. Requests that arrive on other event loops hop here first.
final class EngineIOSession: LoopTimerTarget {
    let id: String
    let eventLoop: any EventLoop
    /// The request that opened the session, boxed once so that every ``EngineIOSocket`` handle
    /// (and the Socket.IO objects that keep one) shares it instead of carrying a copy inline.
    let requestBox: EngineIORequestBox
    var request: EngineIORequestInfo { self.requestBox.request }
    let server: EngineIOServer
    var transport: EngineIOTransportStateMachine
    private var heartbeat: EngineIOHeartbeatStateMachine
    private var pendingPoll: (token: UInt64, promise: EventLoopPromise<PollAnswer>)?
    private var websocket: WebSocketConnection?
    private var candidate: WebSocketConnection?
    /// The ping timer, or while a ping awaits its pong (`awaitingPong`), the pong timeout: the
    /// heartbeat never needs both.
    private let heartbeatTimer = LoopTimer()
    private var awaitingPong = false
    /// Made for an upgrade, when one starts.
    private var upgradeTimer: LoopTimer?
    /// The application's per-session state (see ``EngineIOSocket/attachment``).
    var attachment: AnyObject?
    /// Whether the packets being sent may be compressed (the application's `compress` flag).
    private var compress = true
    /// Whether a packet queued for the next long-poll answer may be compressed: the answer is
    /// compressed when any of its packets may be (as in the reference server).
    private var pollCompress = false
    /// While the packets of a POST are handled, a poll answer they trigger waits here (and
    /// takes along whatever else they queue), so that all their answers leave in one response
    /// rather than the first alone and the rest with the next poll.
    private var holdingPollAnswer = false
    private var heldPollAnswer: [EngineIOPacket]?
    /// The turn of the request that applies next, and the requests that arrived here before
    /// their turn (see ``inTurn(_:_:)``).
    private var nextTurn: UInt32 = 0
    private var earlyRequests: [UInt32: () -> Void] = [:]
    /// The slow-consumer limits of the WebSocket queue (from the configuration, read once).
    private let limits: (packets: Int, bytes: Int)
    /// A handle for the application. Made on demand: a stored handle would hold the session
    /// strongly from inside itself and keep every closed session alive.
    var handle: EngineIOSocket { EngineIOSocket(session: self) }

    init(
        id: String,
        eventLoop: any EventLoop,
        request: EngineIORequestInfo,
        server: EngineIOServer,
        websocket: WebSocketConnection?
    ) {
        self.id = id
        self.eventLoop = eventLoop
        self.requestBox = EngineIORequestBox(request)
        self.server = server
        self.transport = EngineIOTransportStateMachine(
            transport: websocket == nil ? .polling : .websocket,
            maxBufferedPackets: server.configuration.maxBufferedPackets,
            maxBufferedBytes: server.configuration.maxBufferedBytes
        )
        self.heartbeat = EngineIOHeartbeatStateMachine(
            pingInterval: server.configuration.pingInterval,
            pingTimeout: server.configuration.pingTimeout
        )
        self.websocket = websocket
        self.limits = (server.configuration.maxBufferedPackets, server.configuration.maxBufferedBytes)
    }

    /// Sends the open packet, arms the heartbeat and tells the application.
    func start() {
        let config = self.server.configuration
        let handshake = EngineIOHandshake(
            sid: self.id,
            upgrades: self.websocket == nil && config.allowUpgrades && config.transports.contains(.websocket)
                ? [.websocket] : [],
            pingInterval: config.pingIntervalMilliseconds,
            pingTimeout: config.pingTimeoutMilliseconds,
            maxPayload: config.maxPayload
        )
        self.send(.open(handshake.json))
        self.apply(self.heartbeat.sessionOpened(now: .now()))
        config.logger.debug(
            "session opened",
            metadata: ["sid": "\(self.id)", "transport": "\(self.websocket == nil ? "polling" : "websocket")"]
        )
        self.server.application.sessionOpened(self.handle)
    }

    // MARK: Outgoing

    func send(_ packet: EngineIOPacket) {
        switch self.transport.packetQueued(packet) {
        case .dropped:
            break
        case .buffered:
            if self.compress { self.pollCompress = true }
        case .answerPoll(let packets):
            if self.compress { self.pollCompress = true }
            if self.holdingPollAnswer {
                self.heldPollAnswer = packets
            } else {
                self.answerPoll(packets)
            }
        case .writeWebSocket(let packet):
            guard let websocket = self.websocket else { return }
            if !websocket.send(packet, compress: self.compress, limits: self.limits) {
                // A client that stops reading: bound what it can make the server hold.
                self.close(reason: .bufferFull)
            }
        case .closeSession(let reason):
            self.close(reason: reason)
        }
    }

    func send(_ message: EngineIOPacket, attachments: [ByteBuffer], volatile: Bool, compress: Bool = true) {
        if volatile && !self.isWritable { return }
        self.compress = compress
        defer { self.compress = true }
        self.send(message)
        for attachment in attachments { self.send(.binaryMessage(attachment)) }
    }

    /// Whether the transport can take a packet right now (Node's `transport.writable`): a
    /// long-poll is waiting, or the WebSocket has no writes still pending.
    var isWritable: Bool {
        switch self.transport.currentTransport {
        case .polling: return self.pendingPoll != nil
        case .websocket: return self.websocket?.isIdle ?? false
        case nil: return false
        }
    }

    private func answerPoll(_ packets: [EngineIOPacket]) {
        guard let pending = self.pendingPoll else { return }
        self.pendingPoll = nil
        pending.promise.succeed(self.pollAnswer(packets))
    }

    // MARK: Heartbeat

    private func apply(_ action: EngineIOHeartbeatStateMachine.Action) {
        switch action {
        case .none:
            break
        case .schedulePing(let deadline):
            self.awaitingPong = false
            self.heartbeatTimer.arm(at: deadline, on: self.eventLoop, target: self)
        case .sendPing(let timeout):
            // The timeout is armed when the ping is queued, whether or not a long-poll is waiting
            // to carry it (Engine.IO v4 heartbeat has no grace period).
            self.awaitingPong = true
            self.heartbeatTimer.arm(at: timeout, on: self.eventLoop, target: self)
            self.send(.ping(""))
        case .closeSession:
            self.close(reason: .pingTimeout)
        }
    }

    // MARK: Incoming

    /// Handles one packet from the client. `via` is the WebSocket it came over, `nil` for polling.
    func received(_ packet: EngineIOPacket, viaConnection connectionID: ObjectIdentifier?) {
        if let connectionID, let candidate, connectionID == candidate.id {
            self.receivedFromCandidate(packet)
            return
        }
        switch packet {
        case .pong:
            // Arms the next ping in place of the pong timeout.
            self.apply(self.heartbeat.pongReceived(now: .now()))
        case .ping(let payload):
            self.send(.pong(payload))
        case .message(let text):
            self.server.application.textReceived(text, from: self.handle)
        case .binaryMessage(let bytes):
            self.server.application.binaryReceived(bytes, from: self.handle)
        case .close:
            self.close(reason: .transportClose, byClient: true)
        case .open, .upgrade, .noop, .encodedMessage:
            break  // nothing for the server to do (clients never send open; decoding never yields encoded)
        }
    }

    private func receivedFromCandidate(_ packet: EngineIOPacket) {
        switch packet {
        case .ping("probe"):
            self.candidate?.send(.pong("probe"))
            if let packets = self.transport.probeReceived() { self.answerPoll(packets) }
        case .upgrade:
            switch self.transport.upgradeReceived() {
            case .upgraded(let answerPendingPoll, let flush):
                self.upgradeTimer?.cancel()
                self.websocket = self.candidate
                self.candidate = nil
                if answerPendingPoll { self.answerPoll([.noop]) }
                for packet in flush { self.websocket?.send(packet) }
            case .ignore:
                break
            }
        case .open, .close, .ping, .pong, .message, .binaryMessage, .noop, .encodedMessage:
            // Anything else during the upgrade handshake aborts it, as in the reference server.
            self.abandonUpgrade()
        }
    }

    // MARK: Request order

    /// Applies a request in the order requests arrived, whichever event loops they arrived on.
    ///
    /// A request takes its turn from the session table when it arrives (``EngineIOServer``), and
    /// then hops here; a request from another loop can be overtaken on the way by a later one
    /// from this loop (a long-poll GET by the POST that closes the session, which would leave the
    /// GET unknown instead of answered). One that arrives before its turn waits for the earlier
    /// ones, as they would have been applied in a single-threaded server. `turn` is `nil` for a
    /// request that arrived after the session closed (order no longer matters).
    func inTurn(_ turn: UInt32?, _ request: @escaping () -> Void) {
        guard let turn else { return request() }
        guard turn == self.nextTurn else {
            self.earlyRequests[turn] = request
            return
        }
        request()
        self.nextTurn &+= 1
        while let next = self.earlyRequests.removeValue(forKey: self.nextTurn) {
            next()
            self.nextTurn &+= 1
        }
    }

    // MARK: Long-polling

    enum PostOutcome {
        case accepted
        case overlap
        case rejected(EngineIOError)
    }

    /// Closes the session when its pong is overdue but the timer has not fired yet: a loop
    /// handles the I/O that woke it before its timers, so a request read in the same wake-up as
    /// the deadline would otherwise still find the session open (Engine.IO v4 has no grace
    /// period: at handshake + pingInterval + pingTimeout the session is gone).
    private func closeIfPongOverdue() {
        guard self.awaitingPong else { return }
        // The machine knows the deadline: it answers `.none` before it.
        let action = self.heartbeat.pongTimerFired(now: .now())
        guard case .closeSession = action else { return }
        self.awaitingPong = false
        self.apply(action)
    }

    func pollReceived(promise: EventLoopPromise<PollAnswer>, token: UInt64) {
        self.closeIfPongOverdue()
        switch self.transport.pollRequestReceived() {
        case .answer(let packets):
            promise.succeed(self.pollAnswer(packets))
        case .hold:
            self.pendingPoll = (token, promise)
            if token != 0 {  // token 0 is the handshake request, answered at once
                self.server.configuration.logger.trace("long-poll held", metadata: ["sid": "\(self.id)"])
            }
        case .overlap:
            promise.fail(EngineIOError.badRequest)
            self.close(reason: .transportError)
        case .reject(let error):
            promise.fail(error)
        }
    }

    /// The answer to a long-poll, with the compress flag of the packets queued for it.
    private func pollAnswer(_ packets: [EngineIOPacket]) -> PollAnswer {
        defer { self.pollCompress = false }
        return PollAnswer(packets: packets, compress: self.pollCompress)
    }

    func pollAborted(token: UInt64) {
        guard let pending = self.pendingPoll, pending.token == token else { return }
        if let reason = self.transport.pollRequestAborted() {
            self.pendingPoll = nil
            pending.promise.fail(ChannelError.ioOnClosedChannel)
            self.close(reason: reason)
        }
    }

    func postReceived() -> PostOutcome {
        self.closeIfPongOverdue()
        switch self.transport.postReceived() {
        case .accept: return .accepted
        case .overlap:
            self.close(reason: .transportError)
            return .overlap
        case .reject(let error): return .rejected(error)
        }
    }

    func postFinished(_ packets: [EngineIOPacket]) {
        self.holdingPollAnswer = true
        for packet in packets {
            if self.transport.isClosed { break }
            self.received(packet, viaConnection: nil)
        }
        self.holdingPollAnswer = false
        if let held = self.heldPollAnswer {
            self.heldPollAnswer = nil
            self.answerPoll(held + self.transport.takeBuffered())
        }
        self.transport.postFinished()
    }

    // MARK: WebSocket

    /// A WebSocket asks to carry this session. Returns `false` when it must be closed instead.
    func websocketAttached(_ connection: WebSocketConnection) -> Bool {
        guard self.transport.websocketUpgradeRequested() else { return false }
        self.candidate = connection
        let timer = self.upgradeTimer ?? LoopTimer()
        self.upgradeTimer = timer
        timer.arm(at: .now() + self.server.configuration.upgradeTimeout, on: self.eventLoop, target: self)
        return true
    }

    func loopTimerFired(_ timer: LoopTimer) {
        if timer === self.heartbeatTimer {
            if self.awaitingPong {
                self.awaitingPong = false
                self.apply(self.heartbeat.pongTimerFired(now: .now()))
            } else {
                self.apply(self.heartbeat.pingTimerFired(now: .now()))
            }
        } else if timer === self.upgradeTimer {
            self.abandonUpgrade()
        }
    }

    private func abandonUpgrade() {
        guard self.transport.upgradeFailed() else { return }
        self.server.setUpgrading(self.id, false)
        self.upgradeTimer?.cancel()
        self.candidate?.close(code: .normalClosure, closePacket: false)
        self.candidate = nil
    }

    func websocketClosed(_ connection: WebSocketConnection, reason: EngineIOCloseReason) {
        if let candidate, candidate.id == connection.id {
            self.candidate = nil
            if self.transport.upgradeFailed() {
                self.upgradeTimer?.cancel()
                self.server.setUpgrading(self.id, false)
            }
        } else if let websocket, websocket.id == connection.id {
            self.close(reason: reason)
        }
    }

    // MARK: Closing

    func close(reason: EngineIOCloseReason, byClient: Bool = false) {
        // A poll answer held while a POST is handled goes out now, with the close.
        let held = self.heldPollAnswer.map { $0 + self.transport.takeBuffered() }
        self.heldPollAnswer = nil
        guard let action = self.transport.closeRequested(byClient: byClient) else { return }
        self.heartbeat.stop()
        self.heartbeatTimer.cancel()
        self.upgradeTimer?.cancel()
        self.server.remove(self.id)
        if let held {
            self.answerPoll(held + [byClient ? .noop : .close])
        } else if let packet = action.answerPendingPoll {
            self.answerPoll([packet])
        }
        let code = Self.closeCode(for: reason)
        if action.closeWebSocket { self.websocket?.close(code: code, closePacket: reason == .serverShutdown) }
        if action.closeUpgradeCandidate { self.candidate?.close(code: code, closePacket: false) }
        self.websocket = nil
        self.candidate = nil
        self.server.configuration.logger.debug(
            "session closed",
            metadata: ["sid": "\(self.id)", "reason": "\(reason)"]
        )
        self.server.application.sessionClosed(self.handle, reason: reason)
        self.attachment = nil
    }

    static func closeCode(for reason: EngineIOCloseReason) -> WebSocketErrorCode {
        switch reason {
        case .serverShutdown: return .goingAway
        case .parseError: return .protocolError
        case .payloadTooLarge: return .messageTooLarge
        case .transportError, .bufferFull: return .unexpectedServerError
        default: return .normalClosure
        }
    }
}

@available(*, unavailable)
extension EngineIOSession: Sendable {}

/// The write side of one WebSocket, as a session sees it. Any thread may call it: frames are
/// queued under a lock and handed to the channel in order by one task per event-loop tick, so
/// a burst of sends (the acks answering one read, several broadcasts reaching one receiver)
/// costs one flush, one `writev` and one completion callback rather than one of each per frame.
package final class WebSocketConnection: Sendable {
    package let channel: any Channel
    private let state: Mutex<OutboundQueue>

    /// What waits for the next flush, and what the kernel has not taken yet.
    struct OutboundQueue {
        enum Entry {
            /// A data frame's payload and opcode (a `WebSocketFrame` is only made for the
            /// handlers above the encoder, when permessage-deflate must see it).
            case frame(ByteBuffer, opcode: WebSocketOpcode, compress: Bool)
            case close(EngineIOWebSocketHandler.CloseRequest)
        }
        /// Frames (and their bytes) written but not yet handed to the kernel, for volatile
        /// sends and the slow-consumer limits.
        var pendingPackets = 0
        var pendingBytes = 0
        /// Entries not yet written to the channel, and their frames' share of the counts.
        var entries: [Entry] = []
        var queuedPackets = 0
        var queuedBytes = 0
        var flushScheduled = false
        /// The array the last write emptied, kept for its capacity.
        var spare: [Entry] = []
    }

    /// The connection's frame encoder, below which every frame that needs no
    /// permessage-deflate goes out already framed.
    private let raw: NIOLoopBound<WebSocketRawWriter>
    /// The smallest payload permessage-deflate compresses, when it was negotiated.
    private let compressionThreshold: Int?

    /// Runs the queued writes of this loop's connections once per tick, when given.
    private let scheduler: WebSocketFlushScheduler?

    package init(
        channel: any Channel,
        raw: WebSocketRawWriter,
        compressionThreshold: Int? = nil,
        scheduler: WebSocketFlushScheduler? = nil
    ) {
        self.channel = channel
        self.scheduler = scheduler
        self.state = Mutex(OutboundQueue())
        self.raw = NIOLoopBound(raw, eventLoop: channel.eventLoop)
        self.compressionThreshold = compressionThreshold
    }

    var id: ObjectIdentifier { ObjectIdentifier(self.channel) }

    /// Whether every frame written so far has left the process.
    package var isIdle: Bool { self.state.withLock { $0.pendingPackets == 0 } }

    /// Writes one packet as one frame.
    ///
    /// - Parameter limits: when given, the frame is written only if the frames and bytes not yet
    ///   taken by the kernel stay within them (checked and counted under one lock).
    /// - Returns: `false` when the limits refused the frame (nothing was written).
    @discardableResult
    package func send(
        _ packet: EngineIOPacket,
        compress: Bool = true,
        limits: (packets: Int, bytes: Int)? = nil
    )
        -> Bool
    {
        let size = packet.wireSize
        // The limits are checked under the same lock that queues the entry (below); making the
        // entry first costs nothing worth a second lock round.
        let entry: OutboundQueue.Entry
        switch packet {
        case .binaryMessage(let bytes):
            entry = .frame(bytes, opcode: .binary, compress: compress)
        case .encodedMessage(let bytes):
            entry = .frame(bytes, opcode: .text, compress: compress)  // shared, not copied
        case .open, .close, .ping, .pong, .message, .upgrade, .noop:
            var buffer = self.channel.allocator.buffer(capacity: packet.textPayload.utf8.count + 1)
            packet.writeText(into: &buffer)
            entry = .frame(buffer, opcode: .text, compress: compress)
        }
        let schedule = self.state.withLock { state -> Bool? in
            if let limits, state.pendingPackets >= limits.packets || state.pendingBytes + size > limits.bytes {
                return nil
            }
            state.pendingPackets += 1
            state.pendingBytes += size
            state.queuedPackets += 1
            state.queuedBytes += size
            state.entries.append(entry)
            defer { state.flushScheduled = true }
            return !state.flushScheduled
        }
        guard let schedule else { return false }
        if schedule { self.scheduleFlush() }
        return true
    }

    /// Queues an entry that the frame limits do not count, and schedules the flush.
    private func enqueue(_ entry: OutboundQueue.Entry) {
        let schedule = self.state.withLock { state -> Bool in
            state.entries.append(entry)
            defer { state.flushScheduled = true }
            return !state.flushScheduled
        }
        if schedule { self.scheduleFlush() }
    }

    private func scheduleFlush() {
        if let scheduler = self.scheduler {
            scheduler.schedule(self)
        } else {
            let connection = self
            self.channel.eventLoop.execute { connection.writeQueued() }
        }
    }

    /// Frames up to this size are copied into one batch buffer with their headers; larger ones
    /// are written as they are (shared by every receiver of a broadcast) after their header.
    static let copyLimit = 512

    /// Whether `frame` may skip the handlers above the frame encoder: it goes out as it is
    /// unless permessage-deflate is on and would compress it.
    private func mayWriteRaw(_ data: ByteBuffer, compress: Bool) -> Bool {
        guard let threshold = self.compressionThreshold else { return true }
        return !compress || data.readableBytes < threshold
    }

    /// Hands every queued entry to the channel, in order, and flushes once.
    package func writeQueued() {
        // The queue's array is taken whole and given back empty with its capacity (as `spare`),
        // so that steady traffic allocates no arrays.
        var entries: [OutboundQueue.Entry] = []
        let (packets, bytes) = self.state.withLock { state in
            defer {
                state.queuedPackets = 0
                state.queuedBytes = 0
                state.flushScheduled = false
            }
            swap(&entries, &state.entries)
            swap(&state.entries, &state.spare)
            return (state.queuedPackets, state.queuedBytes)
        }
        guard let raw = self.raw.value.context else {
            // The pipeline is being torn down: nothing more will reach the client.
            self.state.withLock {
                $0.pendingPackets -= packets
                $0.pendingBytes -= bytes
            }
            return
        }
        let count = entries.count
        // Small frames accumulate here, header and payload, to go out as one buffer (sized
        // for all of them up front).
        var batch: ByteBuffer?
        var batchCapacity = 0
        if count > 1 {
            for case .frame(let data, _, let compress) in entries
            where data.readableBytes <= Self.copyLimit && self.mayWriteRaw(data, compress: compress) {
                batchCapacity += data.readableBytes + WebSocketRawWriter.headerSize(length: data.readableBytes)
            }
        }
        func writeBatch() {
            if let pending = batch {
                raw.write(NIOAny(pending), promise: nil)
                batch = nil
            }
        }
        // Entries are moved out one by one (reversed, popped), so that a frame's buffer is
        // uniquely referenced when it is written and its header can go in its headroom.
        entries.reverse()
        var throughPipeline = false
        while let entry = entries.popLast() {
            switch consume entry {
            case .frame(var data, let opcode, let compress):
                guard self.mayWriteRaw(data, compress: compress) else {
                    writeBatch()
                    throughPipeline = true
                    if !compress {
                        // Tells the permessage-deflate handler to send this frame as is.
                        self.channel.triggerUserOutboundEvent(PerMessageDeflateHandler.SkipCompression(), promise: nil)
                    }
                    self.channel.write(WebSocketFrame(fin: true, opcode: opcode, data: data), promise: nil)
                    continue
                }
                let length = data.readableBytes
                let headerSize = WebSocketRawWriter.headerSize(length: length)
                if count == 1 || length > Self.copyLimit, Self.prependHeader(to: &data, opcode: opcode) {
                    // A lone frame (an ack, an emit to one socket) or a large one that no one else
                    // holds takes its header in its own headroom: no allocation, one iovec.
                    writeBatch()
                    raw.write(NIOAny(data), promise: nil)
                } else if length <= Self.copyLimit {
                    if batch == nil {
                        batch = raw.channel.allocator.buffer(capacity: max(batchCapacity, length + headerSize))
                    }
                    let at = batch!.writerIndex
                    batch!.moveWriterIndex(forwardBy: headerSize)
                    WebSocketRawWriter.setHeader(opcode: opcode, length: length, in: &batch!, at: at)
                    batch!.writeImmutableBuffer(data)
                } else {
                    // A large shared buffer (a broadcast) goes out as it is, after its header.
                    writeBatch()
                    var header = raw.channel.allocator.buffer(capacity: headerSize)
                    header.moveWriterIndex(forwardBy: headerSize)
                    WebSocketRawWriter.setHeader(opcode: opcode, length: length, in: &header, at: 0)
                    raw.write(NIOAny(header), promise: nil)
                    raw.write(NIOAny(data), promise: nil)
                }
            case .close(let request):
                writeBatch()
                throughPipeline = true
                self.channel.flush()
                self.channel.triggerUserOutboundEvent(request, promise: nil)
            }
        }
        writeBatch()
        if throughPipeline {
            self.channel.flush()
        } else {
            // Everything went in below the raw writer: flushing from there skips the handlers
            // above it, which hold nothing.
            raw.flush()
        }
        self.account(packets: packets, bytes: bytes, raw: raw, spare: &entries)
    }

    /// Writes the frame header into `data`'s headroom when the buffer is not shared and has
    /// room; returns whether it did.
    private static func prependHeader(to data: inout ByteBuffer, opcode: WebSocketOpcode) -> Bool {
        let length = data.readableBytes
        let headerSize = WebSocketRawWriter.headerSize(length: length)
        let done: Bool? = data.modifyIfUniquelyOwned { data in
            guard data.readerIndex >= headerSize else { return false }
            let at = data.readerIndex - headerSize
            WebSocketRawWriter.setHeader(opcode: opcode, length: length, in: &data, at: at)
            data.moveReaderIndex(to: at)
            return true
        }
        return done == true
    }

    /// Takes the batch off the pending counts once the kernel has its bytes: at once when the
    /// channel buffers nothing after the flush (the usual case, with no promise or callback),
    /// else when a write after it completes (writes complete in order). Gives the emptied
    /// entry array back for reuse under the same lock.
    private func account(
        packets: Int,
        bytes: Int,
        raw: ChannelHandlerContext,
        spare entries: inout [OutboundQueue.Entry]
    ) {
        let settled =
            packets == 0 || (try? self.channel.syncOptions?.getOption(.bufferedWritableBytes)) == 0
        self.state.withLock {
            swap(&$0.spare, &entries)
            if settled {
                $0.pendingPackets -= packets
                $0.pendingBytes -= bytes
            }
        }
        guard !settled else { return }
        // An empty write after the batch completes when the kernel has taken all of it.
        let marker = self.channel.eventLoop.makePromise(of: Void.self)
        marker.futureResult.whenComplete { _ in
            self.state.withLock {
                $0.pendingPackets -= packets
                $0.pendingBytes -= bytes
            }
        }
        raw.write(NIOAny(ByteBuffer()), promise: marker)
        raw.flush()
    }

    /// Closes the WebSocket with `code` (after a close packet when `closePacket`), through the
    /// closing handshake of its handler (RFC 6455 §7.1.1).
    func close(code: WebSocketErrorCode, closePacket: Bool) {
        self.enqueue(.close(EngineIOWebSocketHandler.CloseRequest(code: code, closePacket: closePacket)))
    }
}

/// What a long-poll is answered with.
struct PollAnswer: Sendable {
    var packets: [EngineIOPacket]
    /// Whether HTTP compression may apply: whether any packet was sent without
    /// `compress: false`.
    var compress: Bool
}
