import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// What the benchmark does, chosen on the command line.
enum Scenario: String, CaseIterable, Sendable {
    case connect
    case idle
    case echo
    case fanout
    case polling
}

/// Everything a worker needs to know, fixed for a run.
struct BenchSettings: Sendable {
    var scenario: Scenario
    var polling: Bool
    var host: String
    var address: SocketAddress
    var path: String
    var namespace: String
    var clients: Int
    var window: Int
    var bytes: Int
    var rate: Double
    var concurrency: Int
    var sourceAddresses: [SocketAddress]
    var room: String
    /// Offer permessage-deflate on WebSocket connections.
    var deflate = false
    /// Connect scenario over polling: upgrade each connection to WebSocket before counting it.
    var upgrade = false
    /// Connect scenario: clients (numbered 0..<hold) held open while connections are measured.
    var hold = 0
}

/// State shared by every worker: counters other loops read without a hop.
final class SharedCounters: Sendable {
    /// Connections the connect scenario may still start.
    let connectBudget: Atomic<Int>
    /// Broadcast deliveries counted by every receiver (fan-out pacing).
    let delivered = Atomic<Int>(0)
    /// Source address rotation.
    let nextSource = Atomic<Int>(0)

    init(connectBudget: Int) {
        self.connectBudget = Atomic(connectBudget)
    }
}

/// Counts read while a run goes on (progress lines, setup waits), summed over the workers.
struct BenchProgress: Sendable {
    var operations = 0
    var errors = 0
    var connected = 0
    var joined = 0
    /// Connections opened and not yet connected.
    var opening = 0
    /// Connections open now.
    var open = 0

    static func + (lhs: Self, rhs: Self) -> Self {
        BenchProgress(
            operations: lhs.operations + rhs.operations,
            errors: lhs.errors + rhs.errors,
            connected: lhs.connected + rhs.connected,
            joined: lhs.joined + rhs.joined,
            opening: lhs.opening + rhs.opening,
            open: lhs.open + rhs.open
        )
    }
}

/// A snapshot of one worker's measurements, merged across workers at the end.
struct WorkerReport: Sendable {
    var latency = Histogram<UInt64>(
        lowestDiscernibleValue: 1_000,
        highestTrackableValue: 120_000_000_000,
        numberOfSignificantValueDigits: .three
    )
    var operations = 0
    var connected = 0
    var joined = 0
    var errors = 0
    var mismatches = 0
    var broadcastsSent = 0
    var windowStartSeq = 0
    var windowEndSeq = 0
    var deliveredPerSeq: [Int32] = []
    var firstErrors: [String] = []

    mutating func merge(_ other: WorkerReport) {
        latency.add(other.latency)
        operations += other.operations
        connected += other.connected
        joined += other.joined
        errors += other.errors
        mismatches += other.mismatches
        broadcastsSent += other.broadcastsSent
        windowStartSeq = max(windowStartSeq, other.windowStartSeq)
        windowEndSeq = max(windowEndSeq, other.windowEndSeq)
        if deliveredPerSeq.count < other.deliveredPerSeq.count {
            deliveredPerSeq.append(
                contentsOf: repeatElement(0, count: other.deliveredPerSeq.count - deliveredPerSeq.count)
            )
        }
        for (seq, count) in other.deliveredPerSeq.enumerated() { deliveredPerSeq[seq] += count }
        if firstErrors.count < 5 { firstErrors.append(contentsOf: other.firstErrors.prefix(5 - firstErrors.count)) }
    }
}

/// The simulated clients of one event loop and the scenario logic that drives them. Every
/// method runs on `loop`: the class is confined to it, which is why it may be `Sendable`.
final class BenchWorker: BenchConnectionDelegate, @unchecked Sendable {
    let loop: any EventLoop
    private let settings: BenchSettings
    private let shared: SharedCounters
    private var report = WorkerReport()
    private var measuring = false
    private var running = false
    private var connections: [Int: any BenchConnection] = [:]
    private var startedAt: [Int: UInt64] = [:]
    // Echo: per connection, the next ack id and a ring of send times indexed by id.
    private final class EchoState {
        var nextId = 0
        var sentAt: [UInt64]
        init(window: Int) { sentAt = [UInt64](repeating: 0, count: window * 2) }
    }
    private var echoes: [Int: EchoState] = [:]
    private var echoSuffix: [UInt8] = []
    // Connections still to open; `startedAt` holds those opened but not yet connected.
    private var toOpen: [Int] = []
    // Fan-out sender.
    private var sender: (any BenchConnection)?
    private var senderIndex = -1
    private var seq = 0
    private var unacked = 0
    private var pacerStartedAt: UInt64 = 0
    private var pacer: RepeatedTask?
    private var receivers = 0
    private var padding = ""

    init(loop: any EventLoop, settings: BenchSettings, shared: SharedCounters) {
        self.loop = loop
        self.settings = settings
        self.shared = shared
        self.echoSuffix = Array("\"echo\",\"\(String(repeating: "x", count: settings.bytes))\"]".utf8)
        self.padding = String(repeating: "x", count: max(0, settings.bytes - 24))
    }

    private static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    // MARK: - Opening connections

    /// Opens the connections numbered `indices`, at most `concurrency` at a time.
    func open(_ indices: [Int], concurrency: Int) {
        toOpen = indices.reversed()
        running = true
        let first = settings.scenario == .connect ? concurrency : min(concurrency, toOpen.count)
        for _ in 0..<first { openNext() }
    }

    /// Connect scenario with `--hold`: opens the held clients `indices`, at most `concurrency`
    /// at a time (the measured connections start with ``open(_:concurrency:)`` afterwards).
    func hold(_ indices: [Int], concurrency: Int) {
        toOpen = indices.reversed()
        running = true
        for _ in 0..<min(concurrency, toOpen.count) { openNext() }
    }

    private func openNext() {
        if settings.scenario == .connect, toOpen.isEmpty {
            guard running, shared.connectBudget.subtract(1, ordering: .relaxed).oldValue > 0 else { return }
            // Above the held clients' numbers.
            openConnection(index: Int.random(in: settings.hold..<Int.max))
            return
        }
        guard let index = toOpen.popLast() else { return }
        openConnection(index: index)
    }

    private func makeBootstrap() -> ClientBootstrap {
        var bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
        if settings.sourceAddresses.count > 1 {
            let next = shared.nextSource.add(1, ordering: .relaxed).oldValue
            bootstrap = bootstrap.bind(to: settings.sourceAddresses[next % settings.sourceAddresses.count])
        }
        return bootstrap
    }

    private func openConnection(index: Int) {
        startedAt[index] = Self.now()
        if settings.polling {
            let connection = PollingBenchConnection(
                index: index,
                host: settings.host,
                path: settings.path,
                namespace: settings.namespace,
                address: settings.address,
                delegate: self,
                makeBootstrap: { [unowned self] in makeBootstrap() }
            )
            connections[index] = connection
            connection.start(on: loop)
            return
        }
        let connection = WebSocketBenchConnection(
            index: index,
            host: settings.host,
            path: settings.path,
            namespace: settings.namespace,
            deflate: settings.deflate,
            delegate: self
        )
        connections[index] = connection
        let handler = NIOLoopBound(connection, eventLoop: loop)
        let worker = NIOLoopBound(self, eventLoop: loop)
        makeBootstrap()
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
            }
            .connect(to: settings.address)
            .whenFailure { error in
                worker.value.connectionDidClose(handler.value, error: "connect failed: \(error)")
            }
    }

    // MARK: - BenchConnectionDelegate

    func connectionDidConnect(_ connection: any BenchConnection) {
        let now = Self.now()
        let start = startedAt.removeValue(forKey: connection.index)
        switch settings.scenario {
        case .connect where connection.index < settings.hold:
            report.connected += 1
            if !toOpen.isEmpty { openNext() }
        case .connect:
            if settings.upgrade, let polling = connection as? PollingBenchConnection, let start {
                // Counted once the upgrade is through, as the official client's connection is.
                startedAt[connection.index] = start
                polling.upgrade(deflate: settings.deflate) { [unowned self] in self.connectionDidUpgrade(polling) }
                return
            }
            finishConnect(connection, start: start, now: now)
        case .idle:
            report.connected += 1
            openNext()
        case .echo, .polling:
            report.connected += 1
            if let start { _ = report.latency.record(now &- start) }
            openNext()
        case .fanout:
            if connection.index == senderIndex { return }
            report.connected += 1
            if let start { _ = report.latency.record(now &- start) }
            connection.sendSocketIO { buffer in
                buffer.writeStaticString("20[\"join\",")
                Self.writeJSONString(settings.room, to: &buffer)
                buffer.writeStaticString("]")
            }
            connection.flush()
            openNext()
        }
    }

    func connection(_ connection: any BenchConnection, didReceiveAck id: Int, payload: ByteBufferView) {
        switch settings.scenario {
        case .echo, .polling:
            guard let echo = echoes[connection.index] else { return }
            let sent = echo.sentAt[id % echo.sentAt.count]
            if payload.count != settings.bytes + 4 { report.mismatches += 1 }
            if measuring {
                _ = report.latency.record(Self.now() &- sent)
                report.operations += 1
            }
            if running { sendEcho(on: connection, echo: echo) }
        case .fanout:
            if connection.index == senderIndex {
                unacked -= 1
                if settings.rate == 0 { pump() }
            } else {
                report.joined += 1
            }
        case .connect, .idle:
            break
        }
    }

    func connection(_ connection: any BenchConnection, didReceiveEvent payload: ByteBufferView) {
        guard settings.scenario == .fanout else { return }
        // ["bcast","SEQ:NANOS:padding"]
        var index = payload.startIndex
        var quotes = 0
        while index < payload.endIndex, quotes < 3 {
            if payload[index] == UInt8(ascii: "\"") { quotes += 1 }
            index += 1
        }
        var sequence = 0
        while index < payload.endIndex, payload[index] != UInt8(ascii: ":") {
            sequence = sequence &* 10 &+ Int(payload[index] &- UInt8(ascii: "0"))
            index += 1
        }
        index += 1
        var sentNanos: UInt64 = 0
        while index < payload.endIndex, payload[index] != UInt8(ascii: ":") {
            sentNanos = sentNanos &* 10 &+ UInt64(payload[index] &- UInt8(ascii: "0"))
            index += 1
        }
        shared.delivered.add(1, ordering: .relaxed)
        if sequence >= report.deliveredPerSeq.count {
            report.deliveredPerSeq.append(
                contentsOf: repeatElement(0, count: sequence + 1024 - report.deliveredPerSeq.count)
            )
        }
        report.deliveredPerSeq[sequence] += 1
        if measuring { _ = report.latency.record(Self.now() &- sentNanos) }
    }

    func connectionDidClose(_ connection: any BenchConnection, error: String?) {
        connections[connection.index] = nil
        startedAt[connection.index] = nil
        echoes[connection.index] = nil
        if connection.index == senderIndex { sender = nil }
        guard running, let error else { return }
        report.errors += 1
        if report.firstErrors.count < 5 { report.firstErrors.append(error) }
        if settings.scenario == .connect || toOpen.count > 0 { openNext() }
    }

    /// The connect scenario's `--upgrade`: the connection is on WebSocket now.
    private func connectionDidUpgrade(_ connection: PollingBenchConnection) {
        let now = Self.now()
        finishConnect(connection, start: startedAt.removeValue(forKey: connection.index), now: now)
    }

    /// The connect scenario: counts a connection that got through (while measuring), closes it
    /// and opens the next.
    private func finishConnect(_ connection: any BenchConnection, start: UInt64?, now: UInt64) {
        if measuring, let start {
            _ = report.latency.record(now &- start)
            report.operations += 1
        }
        connections[connection.index] = nil
        connection.close()
        openNext()
    }

    // MARK: - Echo

    /// Starts `window` echoes on every connection.
    func startEcho() {
        for (index, connection) in connections {
            let echo = EchoState(window: max(1, settings.window))
            echoes[index] = echo
            for _ in 0..<max(1, settings.window) { sendEcho(on: connection, echo: echo) }
            connection.flush()
        }
    }

    private func sendEcho(on connection: any BenchConnection, echo: EchoState) {
        let id = echo.nextId
        echo.nextId += 1
        echo.sentAt[id % echo.sentAt.count] = Self.now()
        let suffix = echoSuffix
        connection.sendSocketIO { buffer in
            buffer.writeInteger(UInt8(ascii: "2"))
            Self.writeDecimal(id, to: &buffer)
            buffer.writeInteger(UInt8(ascii: "["))
            buffer.writeBytes(suffix)
        }
    }

    // MARK: - Fan-out

    /// Opens the broadcasting connection (not a room member) on this worker.
    func openSender(index: Int) {
        senderIndex = index
        openConnection(index: index)
    }

    var senderReady: Bool { connections[senderIndex] != nil && startedAt[senderIndex] == nil }

    /// Starts broadcasting to `receivers` room members: at `settings.rate` per second, or as
    /// fast as deliveries keep up (at most `window` broadcasts not yet delivered everywhere).
    func startBroadcasting(receivers: Int) {
        self.receivers = receivers
        sender = connections[senderIndex]
        pacerStartedAt = Self.now()
        let interval: TimeAmount = settings.rate == 0 ? .microseconds(500) : .milliseconds(1)
        pacer = loop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { [self] _ in pump() }
    }

    private func pump() {
        guard running, let sender else { return }
        var due: Int
        if settings.rate == 0 {
            let fullyDelivered = shared.delivered.load(ordering: .relaxed) / max(1, receivers)
            due = min(settings.window - unacked, fullyDelivered + settings.window - seq)
        } else {
            let elapsed = Double(Self.now() &- pacerStartedAt) / 1e9
            due = Int(elapsed * settings.rate) - seq
            due = min(due, 1_000)
        }
        guard due > 0 else { return }
        let room = settings.room
        let padding = self.padding
        for _ in 0..<due {
            let sequence = seq
            seq += 1
            unacked += 1
            report.broadcastsSent += 1
            let nanos = Self.now()
            sender.sendSocketIO { buffer in
                buffer.writeInteger(UInt8(ascii: "2"))
                buffer.writeString(String(sequence))
                buffer.writeStaticString("[\"broadcast\",")
                Self.writeJSONString(room, to: &buffer)
                buffer.writeStaticString(",\"")
                buffer.writeString("\(sequence):\(nanos):\(padding)")
                buffer.writeStaticString("\"]")
            }
        }
        sender.flush()
    }

    // MARK: - Control from the runner

    /// Resets the measurements and starts counting; returns the first broadcast of the window.
    func beginWindow() {
        let keep = report.deliveredPerSeq
        let sent = report.broadcastsSent
        let connected = report.connected
        let joined = report.joined
        report = WorkerReport()
        report.deliveredPerSeq = keep
        report.broadcastsSent = sent
        report.connected = connected
        report.joined = joined
        report.windowStartSeq = seq
        measuring = true
    }

    /// Stops counting; the broadcasts of the window are `windowStartSeq..<windowEndSeq`.
    func endWindow() {
        measuring = false
        report.windowEndSeq = seq
    }

    /// Stops generating load: no new echoes, broadcasts or connections.
    func stopLoad() {
        pacer?.cancel()
        pacer = nil
        running = false
    }

    /// The measurements so far.
    func snapshot() -> WorkerReport { report }

    /// A cheap progress view: operations, errors and connected clients.
    func progress() -> BenchProgress {
        BenchProgress(
            operations: report.operations,
            errors: report.errors,
            connected: report.connected,
            joined: report.joined,
            opening: startedAt.count,
            open: connections.count
        )
    }

    /// Closes every connection.
    func closeAll() {
        running = false
        for connection in connections.values { connection.close() }
        connections.removeAll()
    }

    static func writeDecimal(_ value: Int, to buffer: inout ByteBuffer) {
        guard value >= 10 else {
            buffer.writeInteger(UInt8(ascii: "0") + UInt8(value))
            return
        }
        writeDecimal(value / 10, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(value % 10))
    }

    static func writeJSONString(_ string: String, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                buffer.writeInteger(UInt8(ascii: "\\"))
                buffer.writeInteger(byte)
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(hex[Int(byte >> 4)])
                buffer.writeInteger(hex[Int(byte & 0xF)])
            default: buffer.writeInteger(byte)
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }
}
