/// One event of a dry run's sample and where it would go.
public struct ReplaySampleBody: Codable, Sendable, Equatable {
    public var id: String
    public var destinations: [String]

    public init(id: String, destinations: [String]) {
        self.id = id
        self.destinations = destinations
    }
}

/// `POST /admin/replay`: `202` with the new replay's id, or `200` with a dry run's `sample`
/// (and a null `replay_id`).
public struct ReplayAnswerBody: Codable, Sendable, Equatable {
    public var replayID: String?
    public var dryRun: Bool
    /// `current` or `original`.
    public var routing: String
    public var matchedEvents: Int
    /// Deliveries per destination.
    public var deliveries: [String: Int]
    public var totalDeliveries: Int
    /// Dry runs only: the first ten events (oldest first).
    public var sample: [ReplaySampleBody]?
    /// Backtests only (a dry run with `config`): what the routes file would change.
    public var backtest: BacktestBody?

    public init(
        replayID: String?, dryRun: Bool, routing: String, matchedEvents: Int, deliveries: [String: Int], totalDeliveries: Int, sample: [ReplaySampleBody]?,
        backtest: BacktestBody? = nil
    ) {
        (self.replayID, self.dryRun, self.routing, self.matchedEvents) = (replayID, dryRun, routing, matchedEvents)
        (self.deliveries, self.totalDeliveries, self.sample, self.backtest) = (deliveries, totalDeliveries, sample, backtest)
    }

    enum CodingKeys: String, CodingKey {
        case routing, deliveries, sample, backtest
        case replayID = "replay_id", dryRun = "dry_run", matchedEvents = "matched_events", totalDeliveries = "total_deliveries"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(replayID, forKey: .replayID)
        try container.encode(dryRun, forKey: .dryRun)
        try container.encode(routing, forKey: .routing)
        try container.encode(matchedEvents, forKey: .matchedEvents)
        try container.encode(deliveries, forKey: .deliveries)
        try container.encode(totalDeliveries, forKey: .totalDeliveries)
        try container.encodeIfPresent(sample, forKey: .sample)
        try container.encodeIfPresent(backtest, forKey: .backtest)
    }
}

/// A backtest's changes against the destinations recorded when each event arrived.
public struct BacktestBody: Codable, Sendable, Equatable {
    public var changedEvents: Int
    public var added: [String: Int]
    public var removed: [String: Int]
    /// The newest changed events (at most 100), newest first.
    public var changes: [BacktestChangeBody]

    public init(changedEvents: Int, added: [String: Int], removed: [String: Int], changes: [BacktestChangeBody]) {
        (self.changedEvents, self.added, self.removed, self.changes) = (changedEvents, added, removed, changes)
    }

    enum CodingKeys: String, CodingKey {
        case added, removed, changes, changedEvents = "changed_events"
    }
}

public struct BacktestChangeBody: Codable, Sendable, Equatable {
    public var id: String
    public var before: [String]
    public var after: [String]
    public var added: [String]
    public var removed: [String]

    public init(id: String, before: [String], after: [String], added: [String], removed: [String]) {
        (self.id, self.before, self.after, self.added, self.removed) = (id, before, after, added, removed)
    }
}

/// `GET /admin/replays/{id}`: a replay's progress.
public struct ReplayStatusBody: Codable, Sendable, Equatable {
    public var replayID: String
    /// `running` or `finished`.
    public var state: String
    public var matchedEvents: Int
    public var deliveries: Int
    public var started: Int
    public var succeeded: Int
    public var dead: Int
    public var skipped: Int
    public var retrying: Int
    public var inFlight: Int
    public var attempts: Int
    public var startedAt: String
    public var finishedAt: String?

    public init(
        replayID: String, state: String, matchedEvents: Int, deliveries: Int, started: Int, succeeded: Int, dead: Int, skipped: Int,
        retrying: Int, inFlight: Int, attempts: Int, startedAt: String, finishedAt: String?
    ) {
        (self.replayID, self.state, self.matchedEvents, self.deliveries, self.started) = (replayID, state, matchedEvents, deliveries, started)
        (self.succeeded, self.dead, self.skipped, self.retrying, self.inFlight) = (succeeded, dead, skipped, retrying, inFlight)
        (self.attempts, self.startedAt, self.finishedAt) = (attempts, startedAt, finishedAt)
    }

    enum CodingKeys: String, CodingKey {
        case state, deliveries, started, succeeded, dead, skipped, retrying, attempts
        case replayID = "replay_id", matchedEvents = "matched_events", inFlight = "in_flight", startedAt = "started_at", finishedAt = "finished_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(replayID, forKey: .replayID)
        try container.encode(state, forKey: .state)
        try container.encode(matchedEvents, forKey: .matchedEvents)
        try container.encode(deliveries, forKey: .deliveries)
        try container.encode(started, forKey: .started)
        try container.encode(succeeded, forKey: .succeeded)
        try container.encode(dead, forKey: .dead)
        try container.encode(skipped, forKey: .skipped)
        try container.encode(retrying, forKey: .retrying)
        try container.encode(inFlight, forKey: .inFlight)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
    }
}

/// `POST /admin/deliveries/{id}/retry`: the one-delivery replay it started.
public struct RetryAnswerBody: Codable, Sendable, Equatable {
    public var replayID: String
    public var delivery: String

    public init(replayID: String, delivery: String) {
        self.replayID = replayID
        self.delivery = delivery
    }

    enum CodingKeys: String, CodingKey {
        case delivery, replayID = "replay_id"
    }
}

/// `GET /admin/routes`: the config in force.
public struct RoutesBody: Codable, Sendable, Equatable {
    public var version: String
    public var sources: [String]
    public var destinations: [String]
    public var routes: [String]

    public init(version: String, sources: [String], destinations: [String], routes: [String]) {
        (self.version, self.sources, self.destinations, self.routes) = (version, sources, destinations, routes)
    }
}

/// `POST /admin/routes/reload` that took effect.
public struct ReloadBody: Codable, Sendable, Equatable {
    public var reloaded: Bool
    public var version: String
    public var sources: Int
    public var destinations: Int
    public var routes: Int

    public init(version: String, sources: Int, destinations: Int, routes: Int) {
        (self.reloaded, self.version, self.sources, self.destinations, self.routes) = (true, version, sources, destinations, routes)
    }
}

/// `POST /admin/routes/reload` refused (`422`): every problem, and the version still in force.
public struct ReloadRejectedBody: Codable, Sendable, Equatable {
    public var error: String
    public var version: String
    /// `FILE: path: message` lines.
    public var errors: [String]

    public init(error: String, version: String, errors: [String]) {
        (self.error, self.version, self.errors) = (error, version, errors)
    }
}

/// `GET /admin/journal`: where the journal ends.
public struct JournalBody: Codable, Sendable, Equatable {
    public var lastSequence: UInt64
    public var segment: UInt64
    public var offset: UInt64

    public init(lastSequence: UInt64, segment: UInt64, offset: UInt64) {
        (self.lastSequence, self.segment, self.offset) = (lastSequence, segment, offset)
    }

    enum CodingKeys: String, CodingKey {
        case segment, offset, lastSequence = "last_sequence"
    }
}

/// Every 4xx and 5xx: what is wrong, naming the parameter or field.
public struct ErrorBody: Codable, Sendable, Equatable {
    public var error: String

    public init(_ error: String) {
        self.error = error
    }
}
