/// One destination's circuit breaker, as a value: it takes attempt starts and results and
/// answers how many requests may be in flight and until when none may start. Shared by every
/// delivery engine, so the arithmetic is the same whatever stores the deliveries.
///
/// After `threshold` consecutive failures the breaker is open: the destination gets one request
/// at a time (a probe), at most one per cool-down. The cool-down is `cooldown` after the failure
/// that opened it and doubles per failed probe, capped at the smaller of `maxCooldown` and the
/// destination's `max_backoff_ms` (never below `cooldown`). With the defaults (5, 1 s, 60 s):
///
/// | failed probes so far | next probe after |
/// |---|---|
/// | 0 (just opened) | 1 s |
/// | 1 | 2 s |
/// | 2 | 4 s |
/// | 5 | 32 s |
/// | 6 and more | 60 s |
///
/// A success closes it. A permanent refusal (a 4xx other than 408/429) is an answer from a
/// healthy destination: it closes it too.
public struct CircuitBreaker: Sendable, Equatable {
    /// When a breaker opens and how long it waits.
    public struct Configuration: Sendable, Equatable {
        /// Consecutive failures that open the breaker.
        public var threshold: Int
        /// The first cool-down, in milliseconds.
        public var cooldownMillis: Int64
        /// The longest cool-down, in milliseconds.
        public var maxCooldownMillis: Int64

        public init(threshold: Int = 5, cooldownMillis: Int64 = 1_000, maxCooldownMillis: Int64 = 60_000) {
            self.threshold = max(1, threshold)
            self.cooldownMillis = max(1, cooldownMillis)
            self.maxCooldownMillis = max(1, maxCooldownMillis)
        }
    }

    /// What an attempt's result means for the breaker.
    public enum Result: Sendable, Equatable {
        /// A 2xx, or a permanent refusal: the destination answers.
        case healthy
        /// A connection error, timeout, 408, 429 or 5xx.
        case failure
    }

    /// What the lane may do now.
    public enum Admission: Sendable, Equatable {
        /// Up to this many requests in flight.
        case allow(maxInFlight: Int)
        /// Nothing may start before this time (an open breaker waiting for its next probe).
        case wait(until: Timestamp)
    }

    public let configuration: Configuration
    /// Failures since the last healthy answer (saved in checkpoints).
    public private(set) var consecutiveFailures: Int
    /// Probes started since the breaker opened.
    public private(set) var probes = 0
    /// With the breaker open: no probe before this.
    public private(set) var probeNotBefore: Timestamp?

    public init(configuration: Configuration = Configuration(), consecutiveFailures: Int = 0) {
        self.configuration = configuration
        self.consecutiveFailures = max(0, consecutiveFailures)
    }

    /// A breaker in a state a store kept (a database's lane row).
    public init(configuration: Configuration, consecutiveFailures: Int, probes: Int, probeNotBefore: Timestamp?) {
        self.init(configuration: configuration, consecutiveFailures: consecutiveFailures)
        self.probes = max(0, probes)
        self.probeNotBefore = probeNotBefore
    }

    /// Whether the breaker is open (probing).
    public var isOpen: Bool { consecutiveFailures >= configuration.threshold }

    /// How many requests may be in flight at `now` for a destination whose own limit is
    /// `maxInFlight`: all of them when closed, one probe when open and its cool-down is over.
    public func admission(now: Timestamp, maxInFlight: Int) -> Admission {
        guard isOpen else { return .allow(maxInFlight: maxInFlight) }
        if let probeNotBefore, probeNotBefore > now { return .wait(until: probeNotBefore) }
        return .allow(maxInFlight: 1)
    }

    /// An attempt starts (counted as a probe while open).
    public mutating func started() {
        if isOpen { probes += 1 }
    }

    /// An attempt ended at `now` with `result`; `maxBackoffMillis` is the destination's cap.
    public mutating func record(_ result: Result, now: Timestamp, maxBackoffMillis: Int64) {
        switch result {
        case .healthy: consecutiveFailures = 0
        case .failure: consecutiveFailures += 1
        }
        guard isOpen else {
            probeNotBefore = nil
            probes = 0
            return
        }
        probeNotBefore = Timestamp(milliseconds: now.milliseconds + cooldownMillis(maxBackoffMillis: maxBackoffMillis))
    }

    /// The wait before the next probe, given the probes that failed since the breaker opened
    /// (every probe started so far has failed, or the breaker would be closed).
    func cooldownMillis(maxBackoffMillis: Int64) -> Int64 {
        let failedProbes = min(probes, 16)
        let cap = max(min(configuration.maxCooldownMillis, maxBackoffMillis), configuration.cooldownMillis)
        return min(configuration.cooldownMillis << Int64(failedProbes), cap)
    }
}
