import Benchmark
import EngineIO
import EngineIOCore
import NIOCore
import NIOEmbedded
import NIOWebSocket
import SocketIO
import SocketIOCore

// Micro-benchmarks of the codecs and of the broadcast write path: wall-clock time and
// allocations per operation (the malloc interposer counts every malloc). Run with
// scripts/microbench.sh; numbers are per iteration of the measured closure.

private let payload64 = String(repeating: "x", count: 64)

private let metrics: [BenchmarkMetric] = [.wallClock, .cpuTotal, .mallocCountTotal, .throughput]

private func configuration(_ scaling: BenchmarkScalingFactor = .kilo) -> Benchmark.Configuration {
    .init(metrics: metrics, scalingFactor: scaling, maxDuration: .seconds(2), maxIterations: 1_000_000)
}

/// Drops everything written, succeeding the writes, as a socket that always accepts would.
private final class DiscardWrites: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        promise?.succeed()
    }
}

/// `count` WebSocket connections on one embedded loop, with the production write path (the raw
/// writer as frame encoder, one flush scheduler) over a head that discards the bytes.
private func makeReceivers(
    _ count: Int,
    loop: EmbeddedEventLoop
) throws -> (connections: [WebSocketConnection], scheduler: WebSocketFlushScheduler) {
    let scheduler = WebSocketFlushScheduler(eventLoop: loop)
    var connections: [WebSocketConnection] = []
    for _ in 0..<count {
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(DiscardWrites())
        try WebSocketRawWriter.install(in: channel)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let raw = try channel.pipeline.syncOperations.handler(type: WebSocketRawWriter.self)
        connections.append(WebSocketConnection(channel: channel, raw: raw, scheduler: scheduler))
    }
    return (connections, scheduler)
}

let benchmarks: @Sendable () -> Void = {
    // MARK: Engine.IO

    Benchmark("Engine.IO decode message packet (64 B)", configuration: configuration()) { benchmark in
        var buffer = ByteBuffer(string: "4" + payload64)
        buffer.writeString("")
        for _ in benchmark.scaledIterations {
            blackHole(try EngineIOPacket.decodeText(buffer.readableBytesView))
        }
    }

    Benchmark("Engine.IO polling payload encode (10 × 64 B)", configuration: configuration()) { benchmark in
        let packets = [EngineIOPacket](repeating: .message("42[\"echo\",\"\(payload64)\"]"), count: 10)
        var buffer = ByteBuffer()
        for _ in benchmark.scaledIterations {
            buffer.clear()
            EngineIOPayloadEncoder.encode(packets, into: &buffer)
            blackHole(buffer)
        }
    }

    Benchmark("Engine.IO polling payload decode (10 × 64 B)", configuration: configuration()) { benchmark in
        let packets = [EngineIOPacket](repeating: .message("42[\"echo\",\"\(payload64)\"]"), count: 10)
        var buffer = ByteBuffer()
        EngineIOPayloadEncoder.encode(packets, into: &buffer)
        for _ in benchmark.scaledIterations {
            blackHole(try EngineIOPayloadDecoder.decode(buffer))
        }
    }

    // MARK: Socket.IO

    Benchmark("Socket.IO decode event (64 B string)", configuration: configuration()) { benchmark in
        let text = "212[\"echo\",\"\(payload64)\"]"
        for _ in benchmark.scaledIterations {
            blackHole(try SocketIOPacket.decode(text, maxAttachments: 10))
        }
    }

    Benchmark("Socket.IO decode event (object with 8 fields)", configuration: configuration()) { benchmark in
        let text =
            "2[\"update\",{\"id\":12345,\"name\":\"player-1\",\"x\":12.5,\"y\":-3.25,\"alive\":true,"
            + "\"score\":9001,\"team\":\"red\",\"tags\":[\"a\",\"b\"]}]"
        for _ in benchmark.scaledIterations {
            blackHole(try SocketIOPacket.decode(text, maxAttachments: 10))
        }
    }

    // A hostile payload: one object with 110 000 distinct short keys, about 1 MB (under the default
    // maxPayload). Parsing it was quadratic (22 s of one event loop); it must stay linear. The
    // benchmark fails when one parse takes longer than `largeObjectBound`, which a linear parser
    // misses by two orders of magnitude and a quadratic one exceeds by two.
    Benchmark(
        "Socket.IO decode event (1 MB object of 110 000 keys, bound 300 ms)",
        configuration: .init(metrics: metrics, scalingFactor: .one, maxDuration: .seconds(2), maxIterations: 20)
    ) { benchmark in
        var text = "2[\"x\",{"
        for i in 0..<110_000 { text += "\"k\(i)\":\(i)," }
        text += "\"k0\":0}]"
        let largeObjectBound = Duration.milliseconds(300)
        let clock = ContinuousClock()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let start = clock.now
            blackHole(try SocketIOPacket.decode(text, maxAttachments: 10))
            let elapsed = clock.now - start
            if elapsed > largeObjectBound {
                benchmark.error("one parse took \(elapsed), over the bound of \(largeObjectBound)")
            }
        }
        benchmark.stopMeasurement()
    }

    Benchmark("Socket.IO encode ack (64 B string)", configuration: configuration()) { benchmark in
        let packet = SocketIOPacket(kind: .ack, ackID: 12, payload: .array([.string(payload64)]))
        for _ in benchmark.scaledIterations {
            blackHole(packet.encode(prefix: UInt8(ascii: "4"), headroom: 10))
        }
    }

    Benchmark("Socket.IO encode binary event (1 KiB attachment)", configuration: configuration()) { benchmark in
        let bytes = ByteBuffer(repeating: 7, count: 1024)
        let packet = SocketIOPacket(kind: .event, payload: .array([.string("file"), .binary(bytes)]))
        for _ in benchmark.scaledIterations {
            blackHole(packet.encode(prefix: UInt8(ascii: "4"), headroom: 10))
        }
    }

    // MARK: Echo and broadcast paths

    Benchmark(
        "Echo: decode event + encode ack + frame + write to one WebSocket",
        configuration: configuration()
    ) { benchmark in
        let loop = EmbeddedEventLoop()
        let (connections, _) = try makeReceivers(1, loop: loop)
        let text = "212[\"echo\",\"\(payload64)\"]"
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let event = try SocketIOPacket.decode(text, maxAttachments: 10).packet
            let ack = SocketIOPacket(kind: .ack, ackID: event.ackID, payload: .array(event.arguments))
            connections[0].send(.encodedMessage(OutgoingPacket(ack).frame))
            loop.run()
        }
        benchmark.stopMeasurement()
        try connections[0].channel.close().wait()
    }

    Benchmark(
        "Broadcast to 1000 WebSockets: encode once + queue + frame + write (per broadcast)",
        configuration: configuration(.one)
    ) { benchmark in
        let loop = EmbeddedEventLoop()
        let (connections, _) = try makeReceivers(1000, loop: loop)
        let packet = SocketIOPacket(kind: .event, payload: .array([.string("bcast"), .string(payload64)]))
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let encoded = OutgoingPacket(packet)
            for connection in connections { connection.send(.encodedMessage(encoded.frame)) }
            loop.run()
        }
        benchmark.stopMeasurement()
        for connection in connections { try connection.channel.close().wait() }
    }
}
