import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix

/// The `socketio-bench` command: a Socket.IO v5 / Engine.IO v4 load generator for loopback.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "socketio-bench",
        abstract: "A load generator for Socket.IO v5 / Engine.IO v4 servers, on loopback addresses only.",
        discussion: """
            The target runs the benchmark app on --namespace (socketio-server --profile bench does): 'echo' acknowledged with its arguments, 'join(room)' acknowledged after joining, 'broadcast(room, payload)' emitting 'bcast(payload)' to the room and then acknowledged.

            Scenarios:

            connect: open, handshake and connect the namespace over WebSocket (or --transport polling, and with --upgrade then upgrade to WebSocket as the official client does by default), then close as browsers do (a close frame, then the server closes the TCP connection; at most 2 s), --concurrency at a time; counts connections per second and the latency from TCP connect to the namespace CONNECT.

            idle: hold --clients connections answering heartbeats for --duration seconds; with --server-pid, reports the server's RSS per connection.

            echo: --clients connections each keep --window acknowledged 'echo' events of --bytes bytes in flight; counts acknowledgements and their round-trip latency.

            fanout: --clients connections join --room, then one more connection broadcasts to it at --rate per second (0: as fast as deliveries keep up, at most --window broadcasts not delivered everywhere); counts deliveries, their latency from the broadcast, and deliveries that never arrived.

            polling: the echo scenario over HTTP long-polling.

            Each scenario connects, runs --warmup seconds, then measures for --duration seconds. A progress line goes to stderr every second; a table, then one JSON line, to stdout. With --server-pid, the server's CPU time over the measured window is divided by the operations (µs per echo, per delivery, per connection). The exit status is 1 when any error, mismatched acknowledgement or missing delivery happened, or no operation completed (unless --allow-errors), 2 when the clients could not all connect, 64 for invalid options (a target that is not a loopback address among them).
            """
    )

    @Argument(help: "Scenario: \(Scenario.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scenario: String

    @Option(help: "Server address: a loopback IP address (127.0.0.0/8 or ::1) or localhost.")
    var host = "127.0.0.1"

    @Option(help: "Server port.")
    var port = 3000

    @Option(help: "Engine.IO path.")
    var path = "/socket.io/"

    @Option(help: "Socket.IO namespace.")
    var namespace = "/"

    @Option(help: "Transport: websocket or polling (the polling scenario is always polling).")
    var transport = "websocket"

    @Option(name: [.short, .long], help: "Connections (echo, fanout receivers, idle).")
    var clients = 50

    @Option(
        name: [.short, .long],
        help: "Echo: acknowledgements in flight per connection. Fanout at rate 0: broadcasts in flight."
    )
    var window = 10

    @Option(name: [.short, .long], help: "Payload bytes of each echo or broadcast.")
    var bytes = 64

    @Option(help: "Fanout: broadcasts per second; 0 saturates.")
    var rate: Double = 0

    @Option(help: "Fanout: the room.")
    var room = "bench"

    @Option(name: [.short, .long], help: "Seconds to measure.")
    var duration: Double = 10

    @Option(help: "Seconds of load before measuring.")
    var warmup: Double = 2

    @Option(help: "Connect: stop after this many connections (0: only --duration bounds it).")
    var connections = 0

    @Flag(
        help: """
            Offer permessage-deflate (RFC 7692) on WebSocket connections, as browsers and Node \
            clients do, and fail when the server declines it. The client never compresses; \
            compressed messages from the server are inflated.
            """
    )
    var deflate = false

    @Flag(
        help: """
            Connect scenario with --transport polling: after the namespace CONNECT over polling, \
            upgrade to WebSocket (probe, then upgrade packet) the way the official client does by \
            default, and count the connection once upgraded.
            """
    )
    var upgrade = false

    @Option(
        help: """
            Connect: clients connected first and held open (answering heartbeats) while the \
            connections are measured, as on a server that already serves many clients.
            """
    )
    var hold = 0

    @Option(help: "Connections being opened at once.")
    var concurrency = 64

    @Option(help: "Event-loop threads of the load generator.")
    var threads = 1

    @Option(help: "Source addresses to spread connections over (127.0.0.1, 127.0.0.2, …; IPv4 targets).")
    var sourceAddresses = 16

    @Option(help: "Process id of the server, to report its CPU time and RSS (Linux /proc).")
    var serverPid: Int32?

    @Option(help: "Seconds allowed to connect every client before giving up.")
    var setupTimeout: Double = 60

    @Flag(help: "Exit 0 even when errors or missing deliveries happened.")
    var allowErrors = false

    @Flag(help: "No progress lines.")
    var quiet = false

    func validate() throws {
        guard Scenario(rawValue: scenario) != nil else {
            throw ValidationError(
                "unknown scenario '\(scenario)' (\(Scenario.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        guard transport == "websocket" || transport == "polling" else {
            throw ValidationError("--transport must be websocket or polling")
        }
        guard (1...19_000).contains(clients) else {
            throw ValidationError("--clients must be 1…19000 (the fd limit is 20000)")
        }
        guard window >= 1, bytes >= 0, bytes <= 16 << 20, rate >= 0, duration > 0, warmup >= 0, concurrency >= 1,
            (1...64).contains(threads), (1...250).contains(sourceAddresses), connections >= 0, setupTimeout > 0
        else { throw ValidationError("an option is out of range (see --help)") }
        if hold != 0, scenario != Scenario.connect.rawValue || !(0...19_000).contains(hold) {
            throw ValidationError("--hold needs the connect scenario and is 0…19000")
        }
        if upgrade, scenario != Scenario.connect.rawValue || transport != "polling" {
            throw ValidationError("--upgrade needs the connect scenario with --transport polling")
        }
        guard path.hasPrefix("/") else { throw ValidationError("--path must start with /") }
        guard namespace.hasPrefix("/") else { throw ValidationError("--namespace must start with /") }
        _ = try Self.loopbackAddress(host: host, port: port)
    }

    /// The `Host` header value: IPv6 literals in brackets (RFC 7230 §5.4).
    static func hostHeader(host: String, port: Int) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Resolves `host` to a loopback address, refusing anything else.
    static func loopbackAddress(host: String, port: Int) throws -> SocketAddress {
        let literal = host == "localhost" ? "127.0.0.1" : host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard let address = try? SocketAddress(ipAddress: literal, port: port) else {
            throw ValidationError("--host must be a loopback IP address or localhost, not '\(host)'")
        }
        switch address {
        case .v4(let v4) where UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127: return address
        case .v6 where literal == "::1": return address
        default: throw ValidationError("--host must be a loopback address (127.0.0.0/8 or ::1), not '\(host)'")
        }
    }

    mutating func run() async throws {
        let scenario = Scenario(rawValue: scenario)!
        let address = try Self.loopbackAddress(host: host, port: port)
        let limit = ProcessSample.raiseFileLimit()
        var sources: [SocketAddress] = []
        if case .v4 = address, sourceAddresses > 1 {
            sources = try (1...sourceAddresses).map { try SocketAddress(ipAddress: "127.0.0.\($0)", port: 0) }
        }
        let polling = scenario == .polling || transport == "polling"
        let settings = BenchSettings(
            scenario: scenario,
            polling: polling,
            host: Self.hostHeader(host: host, port: port),
            address: address,
            path: path,
            namespace: namespace,
            clients: clients,
            window: window,
            bytes: bytes,
            rate: rate,
            concurrency: concurrency,
            sourceAddresses: sources,
            room: room,
            deflate: deflate,
            upgrade: upgrade,
            hold: hold
        )
        if scenario != .connect, clients * (polling ? 2 : 1) + 64 > limit {
            throw ValidationError("--clients \(clients) needs more file descriptors than the limit \(limit)")
        }
        if hold + concurrency * (polling ? 2 : 1) + 64 > limit {
            throw ValidationError("--hold \(hold) needs more file descriptors than the limit \(limit)")
        }
        let runner = BenchRunner(settings: settings, threads: threads, serverPID: serverPid, quiet: quiet)
        let result = try await runner.run(
            warmup: warmup,
            duration: duration,
            connections: connections,
            setupTimeout: setupTimeout
        )
        print(result.table())
        print(result.jsonLine())
        if result.setupFailed { throw ExitCode(2) }
        if scenario != .idle, result.operations == 0 {
            FileHandle.standardError.write(Data("socketio-bench: no operation completed\n".utf8))
            if !allowErrors { throw ExitCode(1) }
        }
        if !allowErrors, result.errors + result.mismatches + (result.missing ?? 0) > 0 { throw ExitCode(1) }
    }
}
