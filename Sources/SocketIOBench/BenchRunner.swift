import Foundation
import Histogram
import NIOCore
import NIOPosix

/// Drives the workers through a run: connect, warm up, measure, drain, report.
struct BenchRunner {
    let settings: BenchSettings
    let threads: Int
    let serverPID: Int32?
    let quiet: Bool

    private func say(_ line: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    private func sleep(_ seconds: Double) async {
        try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
    }

    private func total(_ workers: [BenchWorker]) async throws -> BenchProgress {
        var sum = BenchProgress()
        for worker in workers { sum = sum + (try await worker.loop.submit { worker.progress() }.get()) }
        return sum
    }

    /// Waits until `done` holds for the totals, printing progress; false on timeout or when
    /// `failed` holds first.
    private func wait(
        _ workers: [BenchWorker],
        label: String,
        timeout: Double,
        done: (BenchProgress) -> Bool
    ) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var lastPrint = Date()
        while Date() < deadline {
            let now = try await total(workers)
            if done(now) { return true }
            if now.errors > 0, now.opening == 0, !done(now) {
                say("[\(settings.scenario.rawValue)] \(label): \(now.errors) errors, giving up")
                return false
            }
            if Date().timeIntervalSince(lastPrint) >= 1 {
                say(
                    "[\(settings.scenario.rawValue)] \(label): connected \(now.connected) joined \(now.joined) errors \(now.errors)"
                )
                lastPrint = Date()
            }
            await sleep(0.02)
        }
        return false
    }

    func run(warmup: Double, duration: Double, connections: Int, setupTimeout: Double) async throws -> BenchResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let shared = SharedCounters(connectBudget: connections > 0 ? connections : Int.max)
        var loops: [any EventLoop] = []
        for loop in group.makeIterator() { loops.append(loop) }
        let workers = loops.map { BenchWorker(loop: $0, settings: settings, shared: shared) }
        var result = BenchResult(settings: settings, duration: duration)
        let before = serverPID.flatMap(ProcessSample.read(pid:))
        result.serverRSSBeforeKiB = before?.rssKiB

        // Connect.
        let perWorker = max(1, settings.concurrency / workers.count)
        // Without a warm-up, connect measures from its very first connection.
        let measureFromStart = settings.scenario == .connect && warmup == 0
        if measureFromStart {
            for worker in workers { try await worker.loop.submit { worker.beginWindow() }.get() }
        }
        if settings.scenario == .connect {
            if settings.hold > 0 {
                for (n, worker) in workers.enumerated() {
                    let indices = Array(stride(from: n, to: settings.hold, by: workers.count))
                    try await worker.loop.submit { worker.hold(indices, concurrency: perWorker) }.get()
                }
                let held = settings.hold
                let ok = try await wait(workers, label: "holding", timeout: setupTimeout) { $0.connected >= held }
                if !ok { result.setupFailed = true }
            }
            if !result.setupFailed {
                for worker in workers { try await worker.loop.submit { worker.open([], concurrency: perWorker) }.get() }
            }
        } else {
            for (n, worker) in workers.enumerated() {
                let indices = Array(stride(from: n, to: settings.clients, by: workers.count))
                try await worker.loop.submit { worker.open(indices, concurrency: perWorker) }.get()
            }
            let clients = settings.clients
            let ok = try await wait(workers, label: "connecting", timeout: setupTimeout) { $0.connected >= clients }
            if ok, settings.scenario == .fanout {
                let joined = try await wait(workers, label: "joining", timeout: setupTimeout) { $0.joined >= clients }
                let senderWorker = workers[0]
                try await senderWorker.loop.submit { senderWorker.openSender(index: clients) }.get()
                var ready = false
                let deadline = Date().addingTimeInterval(setupTimeout)
                while joined, !ready, Date() < deadline {
                    ready = try await senderWorker.loop.submit { senderWorker.senderReady }.get()
                    if !ready { await sleep(0.01) }
                }
                if !joined || !ready { result.setupFailed = true }
            }
            if !ok { result.setupFailed = true }
        }
        if result.setupFailed {
            var merged = WorkerReport()
            for worker in workers { merged.merge(try await worker.loop.submit { worker.snapshot() }.get()) }
            result.absorb(merged)
            for worker in workers { try await worker.loop.submit { worker.closeAll() }.get() }
            try await group.shutdownGracefully()
            return result
        }
        var connectLatency = WorkerReport().latency
        for worker in workers { connectLatency.add(try await worker.loop.submit { worker.snapshot() }.get().latency) }
        result.connectLatency = LatencySummary(connectLatency)

        // Load.
        switch settings.scenario {
        case .echo, .polling:
            for worker in workers { try await worker.loop.submit { worker.startEcho() }.get() }
        case .fanout:
            let clients = settings.clients
            try await workers[0].loop.submit { workers[0].startBroadcasting(receivers: clients) }.get()
        case .connect, .idle:
            break
        }
        if warmup > 0 {
            say("[\(settings.scenario.rawValue)] warming up for \(warmup) s")
            await sleep(warmup)
        }

        // Measure.
        if !measureFromStart {
            for worker in workers { try await worker.loop.submit { worker.beginWindow() }.get() }
        }
        let start = Date()
        let serverStart = serverPID.flatMap(ProcessSample.read(pid:))
        let ownStart = ProcessSample.ownCPUSeconds()
        result.serverRSSAfterConnectKiB = serverStart?.rssKiB
        var lastOperations = 0
        var lastTime = start
        while true {
            let elapsed = Date().timeIntervalSince(start)
            if elapsed >= duration { break }
            await sleep(min(1, duration - elapsed))
            let now = try await total(workers)
            let interval = Date().timeIntervalSince(lastTime)
            let rate = interval > 0 ? Double(now.operations - lastOperations) / interval : 0
            say(
                String(
                    format: "[%@ %.0f/%.0fs] %d ops (%.0f/s) errors %d open %d",
                    settings.scenario.rawValue,
                    Date().timeIntervalSince(start),
                    duration,
                    now.operations,
                    rate,
                    now.errors,
                    now.open
                )
            )
            lastOperations = now.operations
            lastTime = Date()
        }
        for worker in workers { try await worker.loop.submit { worker.endWindow() }.get() }
        let measured = Date().timeIntervalSince(start)
        let serverEnd = serverPID.flatMap(ProcessSample.read(pid:))
        result.benchCPUSeconds = ((ProcessSample.ownCPUSeconds() - ownStart) * 1000).rounded() / 1000
        for worker in workers { try await worker.loop.submit { worker.stopLoad() }.get() }
        if let serverStart, let serverEnd {
            result.serverCPUSeconds = ((serverEnd.cpuSeconds - serverStart.cpuSeconds) * 1000).rounded() / 1000
            result.serverRSSAfterKiB = serverEnd.rssKiB
        }
        result.measuredSeconds = measured

        // Drain: give broadcasts of the window time to arrive everywhere.
        if settings.scenario == .fanout {
            let deadline = Date().addingTimeInterval(3)
            while Date() < deadline {
                var merged = WorkerReport()
                for worker in workers { merged.merge(try await worker.loop.submit { worker.snapshot() }.get()) }
                if merged.windowDeliveries >= (merged.windowEndSeq - merged.windowStartSeq) * settings.clients { break }
                await sleep(0.05)
            }
        }
        var merged = WorkerReport()
        for worker in workers { merged.merge(try await worker.loop.submit { worker.snapshot() }.get()) }
        let still = try await total(workers)
        result.openAtEnd = still.open
        result.absorb(merged)
        for worker in workers { try await worker.loop.submit { worker.closeAll() }.get() }
        try await group.shutdownGracefully()
        return result
    }
}

extension WorkerReport {
    /// Deliveries of the broadcasts sent during the measured window.
    var windowDeliveries: Int {
        guard windowEndSeq > windowStartSeq else { return 0 }
        var sum = 0
        for seq in windowStartSeq..<min(windowEndSeq, deliveredPerSeq.count) { sum += Int(deliveredPerSeq[seq]) }
        return sum
    }
}

/// Latency percentiles in microseconds.
struct LatencySummary: Encodable {
    var count: UInt64
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double
    var mean: Double

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        func us(_ nanos: UInt64) -> Double { (Double(nanos) / 100).rounded() / 10 }
        p50 = count == 0 ? 0 : us(histogram.valueAtPercentile(50))
        p90 = count == 0 ? 0 : us(histogram.valueAtPercentile(90))
        p99 = count == 0 ? 0 : us(histogram.valueAtPercentile(99))
        p999 = count == 0 ? 0 : us(histogram.valueAtPercentile(99.9))
        max = count == 0 ? 0 : us(histogram.max)
        mean = count == 0 ? 0 : (histogram.mean / 100).rounded() / 10
    }
}

/// What a run measured, printed as a table and as one JSON line.
struct BenchResult: Encodable {
    var scenario: String
    var transport: String
    /// Whether WebSocket connections negotiated permessage-deflate (`--deflate`).
    var deflate: Bool
    /// Whether polling connections upgraded to WebSocket (`--upgrade`).
    var upgrade: Bool
    /// Clients held open during the connect scenario (`--hold`).
    var hold: Int
    var clients: Int
    var window: Int
    var bytes: Int
    var rate: Double
    var duration: Double
    var measuredSeconds = 0.0 {
        didSet { measuredSeconds = (measuredSeconds * 1000).rounded() / 1000 }
    }
    var setupFailed = false
    var connected = 0
    var openAtEnd = 0
    var operations = 0
    var operationsPerSecond = 0.0
    var broadcasts: Int?
    var broadcastsPerSecond: Double?
    var deliveries: Int?
    var missing: Int?
    var errors = 0
    var mismatches = 0
    var firstErrors: [String] = []
    var latency: LatencySummary?
    var connectLatency: LatencySummary?
    var serverCPUSeconds: Double?
    var serverCPUMicrosecondsPerOperation: Double?
    var serverRSSBeforeKiB: Int?
    var serverRSSAfterConnectKiB: Int?
    var serverRSSAfterKiB: Int?
    var serverRSSPerConnectionKiB: Double?
    var benchCPUSeconds: Double?

    init(settings: BenchSettings, duration: Double) {
        scenario = settings.scenario.rawValue
        transport = settings.polling ? "polling" : "websocket"
        deflate = settings.deflate && (!settings.polling || settings.upgrade)
        upgrade = settings.polling && settings.upgrade
        hold = settings.hold
        clients = settings.clients
        window = settings.window
        bytes = settings.bytes
        rate = settings.rate
        self.duration = duration
    }

    /// What one operation is, per scenario.
    var operationName: String {
        switch scenario {
        case "connect": "connection"
        case "fanout": "delivery"
        case "idle": "connection"
        default: "echo"
        }
    }

    static func plural(_ name: String) -> String {
        switch name {
        case "delivery": "deliveries"
        case "echo": "echoes"
        default: name + "s"
        }
    }

    mutating func absorb(_ report: WorkerReport) {
        connected = report.connected
        errors = report.errors
        mismatches = report.mismatches
        firstErrors = report.firstErrors
        operations = report.operations
        if scenario == "fanout" {
            let sent = max(0, report.windowEndSeq - report.windowStartSeq)
            let delivered = report.windowDeliveries
            broadcasts = sent
            deliveries = delivered
            missing = max(0, sent * clients - delivered)
            operations = delivered
            broadcastsPerSecond = measuredSeconds > 0 ? Double(sent) / measuredSeconds : nil
        }
        if scenario == "idle" {
            operations = 0
            if let before = serverRSSBeforeKiB, let after = serverRSSAfterConnectKiB, connected > 0 {
                serverRSSPerConnectionKiB = (Double(after - before) / Double(connected) * 100).rounded() / 100
            }
        }
        if measuredSeconds > 0 { operationsPerSecond = (Double(operations) / measuredSeconds).rounded() }
        if report.latency.totalCount > 0, scenario != "idle" { latency = LatencySummary(report.latency) }
        if let cpu = serverCPUSeconds, operations > 0 {
            serverCPUMicrosecondsPerOperation = (cpu / Double(operations) * 1e7).rounded() / 10
        }
    }

    enum CodingKeys: String, CodingKey {
        case scenario, transport, deflate, upgrade, hold, clients, window, bytes, rate, duration, errors, mismatches,
            latency,
            connected
        case operations, broadcasts, deliveries, missing
        case measuredSeconds = "measured_s"
        case setupFailed = "setup_failed"
        case openAtEnd = "open_at_end"
        case operationsPerSecond = "ops_per_s"
        case broadcastsPerSecond = "broadcasts_per_s"
        case firstErrors = "first_errors"
        case connectLatency = "connect_latency"
        case serverCPUSeconds = "server_cpu_s"
        case serverCPUMicrosecondsPerOperation = "server_cpu_us_per_op"
        case serverRSSBeforeKiB = "server_rss_before_kib"
        case serverRSSAfterConnectKiB = "server_rss_connected_kib"
        case serverRSSAfterKiB = "server_rss_after_kib"
        case serverRSSPerConnectionKiB = "server_rss_kib_per_connection"
        case benchCPUSeconds = "bench_cpu_s"
    }

    func table() -> String {
        var rows: [(String, String)] = [
            (
                "scenario",
                "\(scenario) over \(transport)" + (upgrade ? ", then upgraded to websocket" : "")
                    + (deflate ? " with permessage-deflate" : "")
            ),
            (
                "clients",
                "\(clients)" + (scenario == "echo" || scenario == "polling" ? " × window \(window) × \(bytes) B" : "")
            ),
        ]
        if setupFailed { rows.append(("setup", "FAILED: connected \(connected) of \(clients)")) }
        if scenario != "idle" {
            rows.append(
                (
                    Self.plural(operationName),
                    "\(operations) in \(String(format: "%.2f", measuredSeconds)) s = \(Int(operationsPerSecond))/s"
                )
            )
        }
        if let broadcasts, let broadcastsPerSecond {
            rows.append(
                (
                    "broadcasts",
                    "\(broadcasts) (\(String(format: "%.1f", broadcastsPerSecond))/s), missing deliveries \(missing ?? 0)"
                )
            )
        }
        if let latency {
            rows.append(
                (
                    "latency µs",
                    "p50 \(latency.p50)  p90 \(latency.p90)  p99 \(latency.p99)  p99.9 \(latency.p999)  max \(latency.max)"
                )
            )
        }
        if scenario == "idle" { rows.append(("held", "\(connected) connected, \(openAtEnd) open at the end")) }
        if scenario == "connect", hold > 0 { rows.append(("held", "\(hold) clients open throughout")) }
        rows.append(
            (
                "errors",
                "\(errors) (acknowledgement mismatches \(mismatches))" + (firstErrors.first.map { ": \($0)" } ?? "")
            )
        )
        if let cpu = serverCPUSeconds {
            rows.append(
                (
                    "server CPU",
                    String(format: "%.3f s", cpu)
                        + (serverCPUMicrosecondsPerOperation.map { " = \($0) µs per \(operationName)" } ?? "")
                )
            )
        }
        if let rss = serverRSSAfterKiB {
            rows.append(
                ("server RSS", "\(rss) KiB" + (serverRSSBeforeKiB.map { " (before connecting: \($0) KiB)" } ?? ""))
            )
        }
        if let perConnection = serverRSSPerConnectionKiB { rows.append(("RSS/connection", "\(perConnection) KiB")) }
        if let cpu = benchCPUSeconds { rows.append(("bench CPU", String(format: "%.3f s", cpu))) }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(
            separator: "\n"
        )
    }

    func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
