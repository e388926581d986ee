/// `GET /admin/destinations`: every destination's lane and health.
public struct DestinationListBody: Codable, Sendable, Equatable {
    public var destinations: [DestinationBody]

    public init(destinations: [DestinationBody]) {
        self.destinations = destinations
    }
}

/// One destination: where its deliveries stand, its state and its last 5 minutes.
/// `POST /admin/destinations/{name}/pause` and `/resume` answer with it too.
public struct DestinationBody: Codable, Sendable, Equatable {
    public var name: String
    /// `healthy`, `breaker_open`, `paused_by_410`, `paused` (by an operator), or
    /// `unconfigured` (deliveries wait for it to return to the routes file).
    public var state: String
    public var configured: Bool
    public var paused: Bool
    public var pausedBy410: Bool
    public var breakerOpen: Bool
    public var pending: Int
    public var inFlight: Int
    public var succeeded: Int
    public var dead: Int
    public var maxInFlight: Int?
    /// The configured rate limit (attempts per second), nil for none, and how many times a due
    /// delivery or a replay attempt waited for it.
    public var ratePerSecond: Double?
    public var rateLimited: Int
    /// Attempts in the last 5 minutes (on PostgreSQL, by every instance), those that succeeded, their share
    /// (nil without attempts) and the 99th percentile duration (bucket upper bound).
    public var attempts5m: Int
    public var succeeded5m: Int
    public var successRate5m: Double?
    public var p99Ms5m: Int?

    public init(
        name: String, state: String, configured: Bool, paused: Bool, pausedBy410: Bool, breakerOpen: Bool, pending: Int, inFlight: Int,
        succeeded: Int, dead: Int, maxInFlight: Int?, attempts5m: Int, succeeded5m: Int, successRate5m: Double?, p99Ms5m: Int?,
        ratePerSecond: Double? = nil, rateLimited: Int = 0
    ) {
        (self.ratePerSecond, self.rateLimited) = (ratePerSecond, rateLimited)
        (self.name, self.state, self.configured, self.paused, self.pausedBy410, self.breakerOpen) = (name, state, configured, paused, pausedBy410, breakerOpen)
        (self.pending, self.inFlight, self.succeeded, self.dead, self.maxInFlight) = (pending, inFlight, succeeded, dead, maxInFlight)
        (self.attempts5m, self.succeeded5m, self.successRate5m, self.p99Ms5m) = (attempts5m, succeeded5m, successRate5m, p99Ms5m)
    }

    enum CodingKeys: String, CodingKey {
        case name, state, configured, paused, pending, succeeded, dead
        case pausedBy410 = "paused_by_410", breakerOpen = "breaker_open", inFlight = "in_flight", maxInFlight = "max_in_flight"
        case ratePerSecond = "rate_per_s", rateLimited = "rate_limited"
        case attempts5m = "attempts_5m", succeeded5m = "succeeded_5m", successRate5m = "success_rate_5m", p99Ms5m = "p99_ms_5m"
    }

    /// Absent values are written as null: every field is always present.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(state, forKey: .state)
        try container.encode(configured, forKey: .configured)
        try container.encode(paused, forKey: .paused)
        try container.encode(pausedBy410, forKey: .pausedBy410)
        try container.encode(breakerOpen, forKey: .breakerOpen)
        try container.encode(pending, forKey: .pending)
        try container.encode(inFlight, forKey: .inFlight)
        try container.encode(succeeded, forKey: .succeeded)
        try container.encode(dead, forKey: .dead)
        try container.encode(maxInFlight, forKey: .maxInFlight)
        try container.encode(ratePerSecond, forKey: .ratePerSecond)
        try container.encode(rateLimited, forKey: .rateLimited)
        try container.encode(attempts5m, forKey: .attempts5m)
        try container.encode(succeeded5m, forKey: .succeeded5m)
        try container.encode(successRate5m, forKey: .successRate5m)
        try container.encode(p99Ms5m, forKey: .p99Ms5m)
    }
}

/// `GET /admin/activity`: the last hour, minute by minute, oldest first.
public struct ActivityBody: Codable, Sendable, Equatable {
    public var minutes: [ActivityMinuteBody]

    public init(minutes: [ActivityMinuteBody]) {
        self.minutes = minutes
    }
}

/// One minute: events stored, and delivery attempts by outcome (replays included).
public struct ActivityMinuteBody: Codable, Sendable, Equatable {
    /// The minute's start, RFC 3339.
    public var minute: String
    public var events: Int
    public var succeeded: Int
    public var retried: Int
    public var dead: Int

    public init(minute: String, events: Int, succeeded: Int, retried: Int, dead: Int) {
        (self.minute, self.events, self.succeeded, self.retried, self.dead) = (minute, events, succeeded, retried, dead)
    }
}
