import RelayCore
import Synchronization

/// A clock only the test moves: what the relay's timers sleep on (`Clock<Duration>`) and, as
/// `wall`, its wall time (`RelayClock`), so breaker cool-downs, backoff, Retry-After and max-age run
/// without a single real sleep. A sleeper wakes when `advance` reaches its deadline; a test
/// sees what the code under test is waiting for in `deadlines`.
public final class ManualClock: Clock {
    public struct Instant: InstantProtocol {
        public var offset: Duration

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }

        public func duration(to other: Instant) -> Duration { other.offset - offset }

        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        let id: UInt64
        let deadline: Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Sleeper] = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    /// The wall time at offset zero.
    public let start: Timestamp

    public init(start: Timestamp) {
        self.start = start
    }

    public var now: Instant { state.withLock { $0.now } }

    public var minimumResolution: Duration { .milliseconds(1) }

    /// The same time as the relay's wall clock.
    public struct Wall: RelayClock {
        let clock: ManualClock

        public func now() -> Timestamp { clock.timestamp(clock.now) }
    }

    public var wall: Wall { Wall(clock: self) }

    public func timestamp(_ instant: Instant) -> Timestamp {
        let (seconds, attoseconds) = instant.offset.components
        return Timestamp(milliseconds: start.milliseconds + seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// The wall times the sleepers wait for, earliest first.
    public var deadlines: [Timestamp] {
        state.withLock { $0.sleepers.map(\.deadline) }.sorted().map(timestamp)
    }

    /// Moves time forward, waking every sleeper whose deadline is reached.
    public func advance(by duration: Duration) {
        let woken = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in woken { sleeper.continuation.resume() }
    }

    /// Moves time forward to wall time `time` (never back).
    public func advance(to time: Timestamp) {
        advance(by: .milliseconds(max(0, time.milliseconds - timestamp(now).milliseconds)))
    }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { state -> Bool in
                    if deadline <= state.now || Task.isCancelled { return true }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }
}
