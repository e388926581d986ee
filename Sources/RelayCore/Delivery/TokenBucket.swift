/// A destination's rate limit (`rate_per_s`): a token bucket refilled at `ratePerSecond`,
/// holding at most `burst` tokens (the destination's `max_in_flight`); each attempt, live or
/// replayed, takes one. Pure: a store keeps it (the journal in memory, PostgreSQL in the
/// destination's row, shared by every instance).
public struct TokenBucket: Sendable, Equatable {
    public var ratePerSecond: Double
    public var burst: Double
    /// Tokens as of `updatedAt`.
    public var tokens: Double
    public var updatedAt: Timestamp?

    /// A full bucket.
    public init(ratePerSecond: Double, burst: Int) {
        self.ratePerSecond = ratePerSecond
        self.burst = Double(max(1, burst))
        tokens = self.burst
        updatedAt = nil
    }

    public init(ratePerSecond: Double, burst: Int, tokens: Double, updatedAt: Timestamp?) {
        self.init(ratePerSecond: ratePerSecond, burst: burst)
        self.tokens = min(self.burst, max(0, tokens))
        self.updatedAt = updatedAt
    }

    /// The bucket for `destination`'s settings (nil without a rate limit) holding what a store
    /// kept of it: `tokens` as of `updatedAt` (a reload's previous bucket, a database row); a
    /// full bucket when it kept nothing.
    public static func make(for destination: DestinationConfig, tokens: Double?, updatedAt: Timestamp?) -> TokenBucket? {
        guard let rate = destination.ratePerSecond else { return nil }
        guard let tokens else { return TokenBucket(ratePerSecond: rate, burst: destination.maxInFlight) }
        return TokenBucket(ratePerSecond: rate, burst: destination.maxInFlight, tokens: tokens, updatedAt: updatedAt)
    }

    /// Tokens available at `now` (whole ones may be taken).
    public func available(now: Timestamp) -> Double {
        guard let updatedAt else { return tokens }
        let elapsed = Double(max(0, now.milliseconds - updatedAt.milliseconds))
        return min(burst, tokens + elapsed * ratePerSecond / 1000)
    }

    /// How many attempts may start at `now`: the whole tokens available.
    public func wholeTokens(now: Timestamp) -> Int {
        Int(available(now: now).rounded(.down))
    }

    /// Takes up to `wanted` whole tokens at `now`; returns how many it took.
    public mutating func take(_ wanted: Int, now: Timestamp) -> Int {
        let current = available(now: now)
        let taken = max(0, min(wanted, Int(current.rounded(.down))))
        tokens = current - Double(taken)
        // Never back: with several instances (clocks a little apart) writing one bucket, a stamp
        // moved back would refill the same time twice.
        updatedAt = max(updatedAt ?? now, now)
        return taken
    }

    /// When the next whole token is there (`now` if one is).
    public func nextToken(now: Timestamp) -> Timestamp {
        let current = available(now: now)
        if current >= 1 { return now }
        let millis = min(86_400_000, max(1, ((1 - current) * 1000 / ratePerSecond).rounded(.up)))
        return Timestamp(milliseconds: now.milliseconds + Int64(millis))
    }
}
