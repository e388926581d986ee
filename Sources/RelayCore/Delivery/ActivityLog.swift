import Synchronization

/// Where the console's minute counts come from: this process's `ActivityLog`, or a store
/// shared by several instances that counts for all of them.
public protocol ActivitySource: Sendable {
    /// The last 60 minutes, oldest first, the current one last.
    func lastHour() async -> [ActivityLog.Minute]
    /// Each destination's attempts over the last 5 minutes.
    func health() async -> [String: ActivityLog.Health]
}

/// What happened, minute by minute, for the console's overview and destination health:
/// events stored per minute and delivery attempts per minute by outcome over the last hour,
/// and per destination the attempts of the last 5 minutes with their durations. Bounded: 60
/// minutes overall, and per destination 5 minutes of counts and a fixed histogram (p99 is
/// reported as the upper bound of its histogram bucket). Kept by each process in memory, so it
/// starts empty after a restart and, with several instances, covers this instance's work.
public final class ActivityLog: ActivitySource {
    public struct Minute: Sendable, Equatable, MinuteSlot {
        /// The minute's start, in milliseconds since the epoch.
        public var start: Int64
        public var events = 0
        public var succeeded = 0
        public var retried = 0
        public var dead = 0

        public init(start: Int64) { self.start = start }
    }

    /// One destination's attempts over the last 5 minutes.
    public struct Health: Sendable, Equatable {
        public var attempts: Int
        public var succeeded: Int
        /// The 99th percentile attempt duration (upper bound of its bucket), nil without attempts.
        public var p99Millis: Int?

        public init(attempts: Int, succeeded: Int, p99Millis: Int?) {
            (self.attempts, self.succeeded, self.p99Millis) = (attempts, succeeded, p99Millis)
        }
    }

    /// Upper bounds (ms) of the duration histogram: about 25% apart from 1 ms to an hour
    /// (attempts longer than that are reported as an hour).
    static let bounds: [Int] = {
        var bounds: [Int] = []
        var value = 1.0
        while value < 3_600_000 {
            let rounded = Int(value.rounded(.up))
            if bounds.last != rounded { bounds.append(rounded) }
            value *= 1.25
        }
        return bounds + [3_600_000]
    }()

    struct DestinationMinute: MinuteSlot {
        var start: Int64
        var attempts = 0
        var succeeded = 0
        var histogram: [Int32]

        init(start: Int64) {
            self.start = start
            histogram = [Int32](repeating: 0, count: ActivityLog.bounds.count + 1)
        }
    }

    struct State {
        var minutes: [Minute] = []
        var destinations: [String: [DestinationMinute]] = [:]
    }

    private let state = Mutex(State())
    private let clock: any RelayClock
    public static let hourMinutes = 60
    public static let healthMinutes = 5

    public init(clock: any RelayClock = SystemClock()) {
        self.clock = clock
    }

    public static func minute(_ milliseconds: Int64) -> Int64 { milliseconds - ((milliseconds % 60_000) + 60_000) % 60_000 }

    /// `count` events stored now.
    public func stored(_ count: Int) {
        guard count > 0 else { return }
        let now = Self.minute(clock.now().milliseconds)
        state.withLock { state in Self.update(&state.minutes, now, keeping: Self.hourMinutes) { $0.events += count } }
    }

    /// An attempt to `destination` ended now, after `millis`.
    public func attempted(destination: String, outcome: DeliveryRecord.Outcome, millis: Int) {
        let now = Self.minute(clock.now().milliseconds)
        let bucket = Self.bounds.firstIndex { millis <= $0 } ?? Self.bounds.count
        state.withLock { state in
            Self.update(&state.minutes, now, keeping: Self.hourMinutes) { minute in
                switch outcome {
                case .succeeded: minute.succeeded += 1
                case .retry: minute.retried += 1
                case .dead: minute.dead += 1
                }
            }
            Self.update(&state.destinations[destination, default: []], now, keeping: Self.healthMinutes) { minute in
                minute.attempts += 1
                if outcome == .succeeded { minute.succeeded += 1 }
                minute.histogram[bucket] += 1
            }
        }
    }

    /// Changes the minute starting at `now`, adding it (and forgetting minutes older than the
    /// last `keeping`).
    private static func update<Slot: MinuteSlot>(_ minutes: inout [Slot], _ now: Int64, keeping: Int, _ change: (inout Slot) -> Void) {
        if let index = minutes.lastIndex(where: { $0.start == now }) { return change(&minutes[index]) }
        minutes.removeAll { $0.start <= now - Int64(keeping) * 60_000 }
        minutes.append(Slot(start: now))
        change(&minutes[minutes.count - 1])
    }

    /// The last 60 minutes, oldest first, the current one last; minutes without activity included.
    public func lastHour() -> [Minute] {
        let now = Self.minute(clock.now().milliseconds)
        let known = state.withLock { state in state.minutes }
        let byStart = Dictionary(known.map { ($0.start, $0) }, uniquingKeysWith: { a, _ in a })
        return (0..<Self.hourMinutes).reversed().map { back in
            let start = now - Int64(back) * 60_000
            return byStart[start] ?? Minute(start: start)
        }
    }

    /// Each destination's attempts over the last 5 minutes (the current one included).
    public func health() -> [String: Health] {
        let now = Self.minute(clock.now().milliseconds)
        let floor = now - Int64(Self.healthMinutes - 1) * 60_000
        let destinations = state.withLock { state in state.destinations }
        return destinations.compactMapValues { minutes in
            let recent = minutes.filter { $0.start >= floor }
            let attempts = recent.reduce(0) { $0 + $1.attempts }
            guard attempts > 0 else { return nil }
            var histogram = [Int](repeating: 0, count: Self.bounds.count + 1)
            for minute in recent { for (index, count) in minute.histogram.enumerated() { histogram[index] += Int(count) } }
            // The smallest bucket holding at least 99% of the attempts.
            let needed = (attempts * 99 + 99) / 100
            var seen = 0
            var p99 = Self.bounds.last ?? 0
            for (index, count) in histogram.enumerated() {
                seen += count
                if seen >= needed { p99 = index < Self.bounds.count ? Self.bounds[index] : (Self.bounds.last ?? 0); break }
            }
            return Health(attempts: attempts, succeeded: recent.reduce(0) { $0 + $1.succeeded }, p99Millis: p99)
        }
    }
}

/// A count kept per minute: the minute's start, in milliseconds since the epoch.
protocol MinuteSlot {
    var start: Int64 { get }
    init(start: Int64)
}
