// swift-tools-version:6.1
import PackageDescription

import class Foundation.ProcessInfo

/// Settings shared by every target: Swift 6 language mode plus the upcoming features the
/// style guide asks for (explicit `any`, member import visibility, internal imports by default).
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")

let package = Package(
    name: "swift-socketio-server",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "EngineIO", targets: ["EngineIO", "EngineIOCore"]),
        .library(name: "SocketIO", targets: ["SocketIO", "SocketIOCore", "EngineIO", "EngineIOCore"]),
        .library(name: "RedisClient", targets: ["RedisClient", "RESPCore"]),
        .executable(name: "socketio-server", targets: ["SocketIOServer"]),
        .executable(name: "socketio-bench", targets: ["SocketIOBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSocketIOZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        .systemLibrary(
            name: "CSocketIOOpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .target(
            name: "CSocketIOShims",
            dependencies: ["CSocketIOZlib", "CSocketIOOpenSSL"],
            linkerSettings: [.linkedLibrary("z"), .linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        .target(
            name: "OpenSSLTLS",
            dependencies: [
                "CSocketIOOpenSSL",
                "CSocketIOShims",
                nioCore,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "PerMessageDeflate",
            dependencies: [
                "CSocketIOZlib",
                "CSocketIOShims",
                nioCore,
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .target(name: "EngineIOCore", dependencies: [nioCore], swiftSettings: strictSettings),
        .target(name: "MessagePackCore", dependencies: [nioCore], swiftSettings: strictSettings),
        .target(name: "RESPCore", dependencies: [nioCore], swiftSettings: strictSettings),
        .target(
            name: "SocketIOClusterCore",
            dependencies: ["SocketIOCore", "MessagePackCore", nioCore],
            swiftSettings: strictSettings
        ),
        .target(
            name: "RedisClient",
            dependencies: [
                "RESPCore",
                nioCore,
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                logging,
            ],
            swiftSettings: strictSettings
        ),
        // SocketIOCore uses EngineIOCore's HashedKey for its room index (both are pure).
        .target(
            name: "SocketIOCore",
            dependencies: ["EngineIOCore", "MessagePackCore", nioCore],
            swiftSettings: strictSettings
        ),
        .target(
            name: "EngineIO",
            dependencies: [
                "EngineIOCore",
                "PerMessageDeflate",
                nioCore,
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                logging,
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SocketIO",
            dependencies: [
                logging,
                "SocketIOCore",
                "EngineIO",
                "EngineIOCore",
                nioCore,
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "SocketIOServer",
            dependencies: [
                "OpenSSLTLS",
                "PerMessageDeflate",
                "SocketIO",
                "SocketIOCore",
                "EngineIO",
                "EngineIOCore",
                nioCore,
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                logging,
            ],
            resources: [.embedInCode("Resources/chat.html")],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "SocketIOBench",
            dependencies: [
                "PerMessageDeflate",
                nioCore,
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: ["EngineIO", nioCore, .product(name: "NIOHTTP1", package: "swift-nio"), logging],
            path: "Tests/TestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PerMessageDeflateTests",
            dependencies: [
                "PerMessageDeflate",
                "TestSupport",
                nioCore,
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "OpenSSLTLSTests",
            dependencies: [
                "OpenSSLTLS",
                "CSocketIOOpenSSL",
                "CSocketIOShims",
                "TestSupport",
                nioCore,
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "EngineIOCoreTests",
            dependencies: ["EngineIOCore", "TestSupport", nioCore],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "RedisClientTests",
            dependencies: [
                "RedisClient",
                "RESPCore",
                "TestSupport",
                nioCore,
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SocketIOClusterCoreTests",
            dependencies: ["SocketIOClusterCore", "SocketIOCore", "TestSupport", nioCore],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "RESPCoreTests",
            dependencies: ["RESPCore", "SocketIOCore", "TestSupport", nioCore],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MessagePackCoreTests",
            dependencies: ["MessagePackCore", "SocketIOCore", "TestSupport", nioCore],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SocketIOCoreTests",
            dependencies: ["SocketIOCore", "TestSupport", nioCore],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SocketIOTests",
            dependencies: [
                .product(name: "NIOPosix", package: "swift-nio"),
                "SocketIO",
                "SocketIOCore",
                "EngineIO",
                "EngineIOCore",
                "TestSupport",
                nioCore,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "EngineIOTests",
            dependencies: [
                "EngineIO",
                "EngineIOCore",
                "TestSupport",
                logging,
                nioCore,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)

// Micro-benchmarks (ordo-one/benchmark with its malloc interposer), only when asked for:
// `SOCKETIO_BENCHMARKS=1 swift package --scratch-path .build-bench benchmark` (scripts/microbench.sh),
// so that building, testing and depending on this package never fetch or build the harness.
if ProcessInfo.processInfo.environment["SOCKETIO_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"])
    )
    package.targets.append(
        .executableTarget(
            name: "SocketIOBenchmarks",
            dependencies: [
                "EngineIO",
                "EngineIOCore",
                "SocketIO",
                "SocketIOCore",
                nioCore,
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Tests/Benchmarks/SocketIOBenchmarks",
            swiftSettings: strictSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    )
}
