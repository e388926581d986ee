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
    /// Per-key ordering (`ordering`), nil when the destination does not order.
    public var ordering: OrderingBody?
    /// Keys held by a dead delivery (`on_dead: hold`): all of them counted, the oldest listed
    /// (at most 100).
    public var keysBlocked: Int = 0
    public var heldKeys: [HeldKeyBody] = []

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
        case ordering, keysBlocked = "keys_blocked", heldKeys = "held_keys"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        state = try container.decode(String.self, forKey: .state)
        configured = try container.decode(Bool.self, forKey: .configured)
        paused = try container.decode(Bool.self, forKey: .paused)
        pausedBy410 = try container.decode(Bool.self, forKey: .pausedBy410)
        breakerOpen = try container.decode(Bool.self, forKey: .breakerOpen)
        pending = try container.decode(Int.self, forKey: .pending)
        inFlight = try container.decode(Int.self, forKey: .inFlight)
        succeeded = try container.decode(Int.self, forKey: .succeeded)
        dead = try container.decode(Int.self, forKey: .dead)
        maxInFlight = try container.decodeIfPresent(Int.self, forKey: .maxInFlight)
        ratePerSecond = try container.decodeIfPresent(Double.self, forKey: .ratePerSecond)
        rateLimited = try container.decode(Int.self, forKey: .rateLimited)
        attempts5m = try container.decode(Int.self, forKey: .attempts5m)
        succeeded5m = try container.decode(Int.self, forKey: .succeeded5m)
        successRate5m = try container.decodeIfPresent(Double.self, forKey: .successRate5m)
        p99Ms5m = try container.decodeIfPresent(Int.self, forKey: .p99Ms5m)
        ordering = try container.decodeIfPresent(OrderingBody.self, forKey: .ordering)
        keysBlocked = try container.decodeIfPresent(Int.self, forKey: .keysBlocked) ?? 0
        heldKeys = try container.decodeIfPresent([HeldKeyBody].self, forKey: .heldKeys) ?? []
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
        try container.encode(ordering, forKey: .ordering)
        try container.encode(keysBlocked, forKey: .keysBlocked)
        try container.encode(heldKeys, forKey: .heldKeys)
    }
}

/// A destination's `ordering`: the key (a field name or a JSON Pointer) and what a dead delivery does.
public struct OrderingBody: Codable, Sendable, Equatable {
    public var key: String
    /// `continue` or `hold`.
    public var onDead: String

    public init(key: String, onDead: String) {
        (self.key, self.onDead) = (key, onDead)
    }

    enum CodingKeys: String, CodingKey {
        case key, onDead = "on_dead"
    }
}

/// A key held by its dead delivery: retry the delivery (`POST /admin/deliveries/{id}/retry`;
/// the key moves on once it succeeds) or skip it (`POST /admin/deliveries/{id}/skip`).
public struct HeldKeyBody: Codable, Sendable, Equatable {
    public var key: String
    public var eventID: String
    /// The dead delivery's id (`EVENT_ID:DESTINATION`).
    public var delivery: String
    /// When it died, RFC 3339.
    public var since: String
    /// Deliveries of the key waiting behind it.
    public var waiting: Int

    public init(key: String, eventID: String, delivery: String, since: String, waiting: Int) {
        (self.key, self.eventID, self.delivery, self.since, self.waiting) = (key, eventID, delivery, since, waiting)
    }

    enum CodingKeys: String, CodingKey {
        case key, delivery, since, waiting, eventID = "event_id"
    }
}

/// `POST /admin/deliveries/{id}/skip`: the key the dead delivery held moves on; the delivery stays dead.
public struct SkipAnswerBody: Codable, Sendable, Equatable {
    public var delivery: String
    public var key: String

    public init(delivery: String, key: String) {
        (self.delivery, self.key) = (delivery, key)
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
