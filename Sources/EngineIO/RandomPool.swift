import EngineIOCore
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Cryptographically random bytes for session and socket ids, read from /dev/urandom 4 KiB at a
/// time rather than one system call per 8 bytes (`SystemRandomNumberGenerator`): a connection
/// needs 30 bytes, which used to cost 30 `getrandom` calls.
enum RandomPool {
    private static let pool = NIOLockedValueBox((bytes: [UInt8](repeating: 0, count: 4096), next: 4096))

    /// A session or socket id: 15 random bytes as 20 URL-safe characters, made inside the pool
    /// (no intermediate array).
    static func sessionID() -> String {
        self.pool.withLockedValue { pool in
            if pool.next + 15 > pool.bytes.count {
                Self.refill(&pool.bytes)
                pool.next = 0
            }
            defer { pool.next += 15 }
            return pool.bytes.withUnsafeBytes { raw in
                EngineIOSessionID.make(from: UnsafeRawBufferPointer(rebasing: raw[pool.next..<(pool.next + 15)]))
            }
        }
    }

    private static func refill(_ bytes: inout [UInt8]) {
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            let filled = bytes.withUnsafeMutableBytes { raw -> Bool in
                var offset = 0
                while offset < raw.count {
                    let n = read(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n <= 0 { return false }
                    offset += n
                }
                return true
            }
            if filled { return }
        }
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
    }
}
