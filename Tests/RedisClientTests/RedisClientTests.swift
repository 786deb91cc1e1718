import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RESPCore
import RedisClient
import TestSupport
import Testing

@Suite("Redis URLs")
struct RedisURLTests {
    @Test func urlsAreRead() throws {
        let full = try RedisConfiguration(url: "redis://user:p%40ss@redis.example:6380/2")
        #expect(full.host == "redis.example" && full.port == 6380 && full.database == 2)
        #expect(full.username == "user" && full.password == "p@ss" && !full.tls)
        let password = try RedisConfiguration(url: "rediss://:secret@10.0.0.1")
        #expect(password.username == nil && password.password == "secret" && password.tls && password.port == 6379)
        let ipv6 = try RedisConfiguration(url: "redis://[::1]:7000")
        #expect(ipv6.host == "::1" && ipv6.port == 7000)
        #expect(try RedisConfiguration(url: "redis://localhost").host == "localhost")
        for bad in ["http://x", "redis://", "redis://h:99999", "redis://h/x", "redis://[::1"] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisConfiguration(url: bad) }
        }
    }
}

@Suite(
    "Redis client against redis-server",
    .serialized,
    .timeLimit(.minutes(1)),
    .enabled(if: RedisServerProcess.isAvailable)
)
struct RedisClientTests {
    private func configuration(_ server: RedisServerProcess) -> RedisConfiguration {
        var configuration = try! RedisConfiguration(url: "redis://127.0.0.1:\(server.port)")
        configuration.initialReconnectDelay = .milliseconds(20)
        configuration.maxReconnectDelay = .milliseconds(200)
        return configuration
    }

    /// Waits until `condition` holds (checked every 10 ms), at most `seconds`.
    private func eventually(_ seconds: Double = 5, _ condition: () async -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test(arguments: [RedisConfiguration.ProtocolVersion.resp2, .resp3])
    func commandsArePipelinedAndAnswered(_ version: RedisConfiguration.ProtocolVersion) async throws {
        let server = try RedisServerProcess()
        var configuration = self.configuration(server)
        configuration.protocolVersion = version
        let client = RedisClient(configuration: configuration, eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        #expect(await self.eventually { await client.isConnected })
        #expect(try await client.send("SET", "k", "v") == .simpleString("OK"))
        #expect(try await client.send("GET", "k").string == "v")
        // 1 000 commands in flight at once, answered in order.
        let futures = (0..<1000).map { _ in client.send([ByteBuffer(string: "INCR"), ByteBuffer(string: "n")]) }
        let values: [RESPValue] = try await EventLoopFuture.whenAllSucceed(futures, on: client.eventLoop).get()
        #expect(values.map { $0.integer } == (1...1000).map { Int64($0) })
        await #expect(throws: RedisError.self) { _ = try await client.send("NOSUCHCOMMAND") }
        do {
            _ = try await client.send("NOSUCHCOMMAND")
        } catch let error as RedisError {
            #expect(error.serverMessage?.hasPrefix("ERR unknown command") == true)
        }
        await client.close()
        await #expect(throws: RedisError.self) { _ = try await client.send("PING") }
        server.stop()
    }

    @Test func authAndDatabaseAreSentOnConnect() async throws {
        let server = try RedisServerProcess(arguments: ["--requirepass", "s3cret"])
        var configuration = self.configuration(server)
        configuration.password = "s3cret"
        configuration.database = 3
        let client = RedisClient(configuration: configuration, eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        #expect(await self.eventually { await client.isConnected })
        _ = try await client.send("SET", "in-3", "yes")
        #expect(try await client.send("CLIENT", "INFO").string?.contains("db=3") == true)
        // A wrong password never connects (and keeps retrying in the background).
        configuration.password = "wrong"
        let refused = RedisClient(configuration: configuration, eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        try await Task.sleep(for: .milliseconds(300))
        #expect(await !refused.isConnected)
        await #expect(throws: RedisError.notConnected) { _ = try await refused.send("PING") }
        await client.close()
        await refused.close()
        server.stop()
    }

    @Test func subscriptionsDeliverAndSurviveARestartOfRedis() async throws {
        let server = try RedisServerProcess()
        let configuration = self.configuration(server)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let received = NIOLockedValueBox<[String]>([])
        let subscriber = RedisSubscriber(configuration: configuration, eventLoop: loop) { message in
            received.withLockedValue {
                $0.append(
                    "\(message.kind) \(message.pattern ?? "-") \(message.channel) \(String(buffer: message.payload))"
                )
            }
        }
        let publisher = RedisClient(configuration: configuration, eventLoop: loop)
        #expect(await self.eventually { await publisher.isConnected })
        try await subscriber.subscribe(["a", "b"]).get()
        try await subscriber.psubscribe(["p#*"]).get()
        try await subscriber.ssubscribe(["s1"]).get()
        #expect(try await publisher.publish(ByteBuffer(string: "1"), to: "a").get() == 1)
        _ = try await publisher.publish(ByteBuffer(bytes: [0xFF, 0x00]), to: "p#x").get()
        _ = try await publisher.spublish(ByteBuffer(string: "3"), to: "s1").get()
        #expect(await self.eventually { received.withLockedValue { $0.count } == 3 })
        #expect(received.withLockedValue { $0 }.first == "channel - a 1")
        #expect(received.withLockedValue { $0 }.contains("sharded - s1 3"))
        // `PUBSUB NUMSUB` counts this subscriber once.
        #expect(try await publisher.send("PUBSUB", "NUMSUB", "a").elements?.last?.integer == 1)
        // Redis dies and comes back: both clients reconnect, the subscriber subscribes again.
        server.kill()
        await #expect(throws: RedisError.self) {
            _ = try await publisher.publish(ByteBuffer(string: "lost"), to: "a").get()
        }
        try server.restart()
        #expect(
            await self.eventually(10) {
                (try? await publisher.send("PUBSUB", "NUMSUB", "b").elements?.last?.integer) == 1
            }
        )
        _ = try await publisher.publish(ByteBuffer(string: "after"), to: "b").get()
        #expect(await self.eventually { received.withLockedValue { $0.contains("channel - b after") } })
        try await subscriber.unsubscribe(["b"]).get()
        #expect(
            await self.eventually { (try? await publisher.send("PUBSUB", "NUMSUB", "b").elements?.last?.integer) == 0 }
        )
        await subscriber.close()
        await publisher.close()
        server.stop()
    }

    @Test func aServerThatStopsAnsweringTimesCommandsOut() async throws {
        let server = try RedisServerProcess()
        var configuration = self.configuration(server)
        configuration.commandTimeout = .milliseconds(300)
        let client = RedisClient(configuration: configuration, eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        #expect(await self.eventually { await client.isConnected })
        // CLIENT PAUSE holds every client's commands for a second: the next reply is overdue.
        _ = try await client.send("CLIENT", "PAUSE", "1000")
        let started = ContinuousClock.now
        await #expect(throws: RedisError.timeout) { _ = try await client.send("PING") }
        #expect(ContinuousClock.now - started < .seconds(1))
        // The connection was reset and comes back.
        #expect(await self.eventually(5) { (try? await client.send("PING")) == .simpleString("PONG") })
        await client.close()
        server.stop()
    }
}
