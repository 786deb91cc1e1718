import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// The per-loop timer heap: timers fire once, in deadline order, never early; cancelled ones
/// never; moved ones at their new deadline.
@Suite struct LoopTimersTests {
    /// Records what fired, on the loop.
    final class Recorder: LoopTimerTarget, @unchecked Sendable {
        var fired: [(id: Int, at: NIODeadline, due: NIODeadline)] = []
        var ids: [ObjectIdentifier: (Int, NIODeadline)] = [:]
        var onFire: ((LoopTimer) -> Void)?

        func loopTimerFired(_ timer: LoopTimer) {
            let (id, due) = self.ids[ObjectIdentifier(timer)]!
            self.fired.append((id, .now(), due))
            self.onFire?(timer)
        }
    }

    @Test func randomTimersFireInOrderOnceAndNeverEarly() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let recorder = Recorder()
        let expected = try await loop.submit { () -> Set<Int> in
            var generator = SystemRandomNumberGenerator()
            var timers: [LoopTimer] = []
            let start = NIODeadline.now()
            var live = Set<Int>()
            for id in 0..<2000 {
                let timer = LoopTimer()
                let due = start + .milliseconds(Int64.random(in: 20...400, using: &generator))
                recorder.ids[ObjectIdentifier(timer)] = (id, due)
                timer.arm(at: due, on: loop, target: recorder)
                timers.append(timer)
                live.insert(id)
            }
            // Cancel a third, move a third (earlier or later), twice for some.
            for id in stride(from: 0, to: 2000, by: 3) {
                timers[id].cancel()
                live.remove(id)
                #expect(!timers[id].isArmed)
            }
            for id in stride(from: 1, to: 2000, by: 3) {
                let due = start + .milliseconds(Int64.random(in: 10...450, using: &generator))
                recorder.ids[ObjectIdentifier(timers[id])] = (id, due)
                timers[id].arm(at: due, on: loop, target: recorder)
            }
            #expect(LoopTimers.of(loop).count >= live.count)
            return live
        }.get()
        try await Task.sleep(for: .milliseconds(700))
        let fired = try await loop.submit { recorder.fired }.get()
        #expect(fired.count == expected.count)
        #expect(Set(fired.map(\.id)) == expected)
        for (index, entry) in fired.enumerated() {
            #expect(entry.at >= entry.due)
            if index > 0 { #expect(fired[index - 1].due <= entry.due) }
        }
        let left = try await loop.submit { LoopTimers.of(loop).count }.get()
        #expect(left == 0)
        try await group.shutdownGracefully()
    }

    @Test func aTargetCanArmAgainFromItsCallbackAndCancelledTimersStayQuiet() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let recorder = Recorder()
        let done = loop.makePromise(of: Void.self)
        try await loop.submit {
            let repeating = LoopTimer()
            let quiet = LoopTimer()
            recorder.ids[ObjectIdentifier(repeating)] = (1, .now())
            recorder.ids[ObjectIdentifier(quiet)] = (2, .now())
            var rounds = 0
            recorder.onFire = { timer in
                rounds += 1
                if rounds < 5 {
                    recorder.ids[ObjectIdentifier(timer)] = (1, .now() + .milliseconds(5))
                    timer.arm(at: .now() + .milliseconds(5), on: loop, target: recorder)
                } else {
                    done.succeed()
                }
            }
            repeating.arm(at: .now() + .milliseconds(5), on: loop, target: recorder)
            quiet.arm(at: .now() + .milliseconds(10), on: loop, target: recorder)
            quiet.cancel()
            quiet.cancel()
        }.get()
        try await done.futureResult.get()
        let ids = try await loop.submit { recorder.fired.map(\.id) }.get()
        #expect(ids == [1, 1, 1, 1, 1])
        try await group.shutdownGracefully()
    }
}
