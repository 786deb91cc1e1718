package import NIOCore
import NIOPosix

/// Something a ``LoopTimer`` calls when it fires.
package protocol LoopTimerTarget: AnyObject {
    /// `timer` (one of the target's own) reached its deadline.
    func loopTimerFired(_ timer: LoopTimer)
}

/// A timer of one event loop, made once by its owner and armed and cancelled as often as
/// needed (heartbeats, header, connect and ack timeouts). Armed, it holds its target; on its own
/// it holds nothing. Use it on its loop only (it may be stored anywhere).
package final class LoopTimer: @unchecked Sendable {
    /// The position in the loop's heap; -1 when not armed.
    fileprivate var index = -1
    fileprivate var deadline = NIODeadline.uptimeNanoseconds(0)
    fileprivate var target: (any LoopTimerTarget)?
    fileprivate var timers: LoopTimers?
    /// Free for the owner (an ack id, say).
    package let tag: UInt64

    package init(tag: UInt64 = 0) {
        self.tag = tag
    }

    /// Whether it is armed.
    package var isArmed: Bool { self.index >= 0 }

    /// Arms it (again) for `deadline` on `loop`, replacing an earlier deadline.
    package func arm(at deadline: NIODeadline, on loop: any EventLoop, target: any LoopTimerTarget) {
        let timers = self.timers ?? LoopTimers.of(loop)
        timers.arm(self, at: deadline, target: target)
    }

    /// Disarms it; nothing happens when it is not armed.
    package func cancel() {
        self.timers?.cancel(self)
    }
}

/// The timers of one event loop, in an indexed binary heap: arming, moving and cancelling cost
/// O(log n), and one NIO task wakes the loop at the earliest deadline.
///
/// NIO cancels a scheduled task by searching every task of the loop, so with a timer or two per
/// connected client every connection's timeouts cost time in proportion to the clients connected
/// (about 30 µs per connection with 10 000 clients held, measured). Deadlines are exact (no
/// ticks).
package final class LoopTimers: @unchecked Sendable {
    // @unchecked: used on `eventLoop` only (`of(_:)` hands it out on that loop's thread).
    package let eventLoop: any EventLoop
    private var heap: [LoopTimer] = []
    private var wake: Scheduled<Void>?
    private var wakeDeadline: NIODeadline?

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let current = ThreadSpecificVariable<LoopTimers>()

    /// The timers of `loop`; call on its thread.
    package static func of(_ loop: any EventLoop) -> LoopTimers {
        if let timers = Self.current.currentValue, timers.eventLoop === loop { return timers }
        let timers = LoopTimers(eventLoop: loop)
        Self.current.currentValue = timers
        return timers
    }

    /// The number of armed timers.
    package var count: Int { self.heap.count }

    fileprivate func arm(_ timer: LoopTimer, at deadline: NIODeadline, target: any LoopTimerTarget) {
        if let other = timer.timers, other !== self { other.cancel(timer) }
        timer.target = target
        timer.timers = self
        if timer.index >= 0 {
            let earlier = deadline < timer.deadline
            timer.deadline = deadline
            if earlier { self.siftUp(timer.index) } else { self.siftDown(timer.index) }
        } else {
            timer.deadline = deadline
            timer.index = self.heap.count
            self.heap.append(timer)
            self.siftUp(timer.index)
        }
        self.scheduleWake()
    }

    fileprivate func cancel(_ timer: LoopTimer) {
        guard timer.index >= 0, timer.timers === self else { return }
        self.remove(at: timer.index)
        // The wake stays: when it comes early it just sets itself again.
    }

    /// Makes sure the loop wakes by the earliest deadline.
    private func scheduleWake() {
        guard let first = self.heap.first?.deadline else { return }
        if let scheduled = self.wakeDeadline, scheduled <= first { return }
        self.wake?.cancel()
        self.wakeDeadline = first
        self.wake = self.eventLoop.assumeIsolated().scheduleTask(deadline: first) { self.fire() }
    }

    private func fire() {
        self.wake = nil
        self.wakeDeadline = nil
        let now = NIODeadline.now()
        while let first = self.heap.first, first.deadline <= now {
            let target = first.target
            self.remove(at: 0)
            // The target may arm this or other timers again.
            target?.loopTimerFired(first)
        }
        self.scheduleWake()
    }

    private func remove(at index: Int) {
        let timer = self.heap[index]
        let last = self.heap.removeLast()
        if index < self.heap.count {
            self.heap[index] = last
            last.index = index
            self.siftUp(index)
            self.siftDown(last.index)
        }
        timer.index = -1
        timer.target = nil
    }

    private func siftUp(_ start: Int) {
        var index = start
        let timer = self.heap[index]
        while index > 0 {
            let parent = (index - 1) / 2
            guard timer.deadline < self.heap[parent].deadline else { break }
            self.heap[index] = self.heap[parent]
            self.heap[index].index = index
            index = parent
        }
        self.heap[index] = timer
        timer.index = index
    }

    private func siftDown(_ start: Int) {
        var index = start
        let timer = self.heap[index]
        let count = self.heap.count
        while true {
            var child = 2 * index + 1
            guard child < count else { break }
            if child + 1 < count, self.heap[child + 1].deadline < self.heap[child].deadline { child += 1 }
            guard self.heap[child].deadline < timer.deadline else { break }
            self.heap[index] = self.heap[child]
            self.heap[index].index = index
            index = child
        }
        self.heap[index] = timer
        timer.index = index
    }
}
