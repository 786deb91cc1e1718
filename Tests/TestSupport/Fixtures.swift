public import Foundation
public import NIOCore

/// Finds and loads the repository's `Fixtures/` stories from the test sources' location.
public enum Fixtures {
    /// The `Fixtures/` directory of the repository.
    public static let directory: URL = {
        // Tests/TestSupport/Fixtures.swift -> repository root
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures")
    }()

    /// Decodes `Fixtures/<relativePath>` as JSON.
    ///
    /// - Parameters:
    ///   - type: the type to decode.
    ///   - relativePath: the path under `Fixtures/`.
    /// - Returns: the decoded value.
    /// - Throws: when the file is missing or does not decode.
    public static func load<T: Decodable>(_ type: T.Type, _ relativePath: String) throws -> T {
        let data = try Data(contentsOf: self.directory.appendingPathComponent(relativePath))
        return try JSONDecoder().decode(T.self, from: data)
    }
}

/// Ways to split a byte sequence into chunks, for drip-feeding incremental decoders: every chunk
/// size from 1 to 16, the whole input at once, and a few seeded random splits.
public enum ChunkPlans {
    /// Splits `bytes` by every plan.
    ///
    /// - Parameter bytes: the input.
    /// - Returns: one list of chunks per plan.
    public static func all(_ bytes: [UInt8]) -> [[ByteBuffer]] {
        var plans: [[ByteBuffer]] = [[ByteBuffer(bytes: bytes)]]
        for size in 1...16 where size < max(bytes.count, 2) {
            plans.append(
                stride(from: 0, to: bytes.count, by: size).map {
                    ByteBuffer(bytes: bytes[$0..<min($0 + size, bytes.count)])
                }
            )
        }
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<4 {
            var chunks: [ByteBuffer] = []
            var i = 0
            while i < bytes.count {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let n = Int(seed >> 59) + 1
                chunks.append(ByteBuffer(bytes: bytes[i..<min(i + n, bytes.count)]))
                i += n
            }
            plans.append(chunks)
        }
        return plans
    }
}
