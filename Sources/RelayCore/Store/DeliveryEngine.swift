/// The delivery engine as the server sees it: it runs until stopped, takes destination
/// updates on a reload, reports each destination's lane, and runs replays. The journal's
/// scheduler is one engine; a database-backed one shares this surface, so the admin API,
/// metrics and console work the same on both.
public protocol DeliveryEngine: Sendable {
    /// Delivers until `stop()`; returns once attempts in flight are finished or cut.
    func run() async throws
    /// Stops taking new work.
    func stop() async
    /// Applies a reloaded config (destinations paused by a 410 resume; an operator's pause holds).
    func updateDestinations(_ destinations: [String: DestinationConfig]) async
    /// Pauses a destination, or resumes it, by an operator's hand: see `DeliveryStore.setOperatorPause`.
    func setOperatorPause(_ destination: String, paused: Bool) async throws
    /// Skips the dead delivery that holds its ordering key: see `DeliveryStore.releaseHeldKey`.
    func releaseHeldKey(_ destination: String, event: EventReference, eventID: String) async throws -> Bool
    /// Every destination's lane.
    func laneStatuses() async -> [String: DestinationStatus]
    func status(of destination: String) async -> DestinationStatus?
    /// Starts sending `items` in a replay lane of their own, once the store has saved it.
    func startReplay(id: String, items: [ReplayItem], matchedEvents: Int, concurrency: Int, ratePerSecond: Double?) async throws
    func replayStatus(_ id: String) async -> ReplayStatus?
    /// Running replays, and the deliveries they have not finished.
    func replaySummary() async -> (running: Int, remaining: Int)
    /// Keeps stored events from being deleted by retention while a replay is planned, until
    /// `releaseRetention()` (the plan's events are protected once the replay has started).
    func holdRetention() async
    func releaseRetention() async
}

/// What one destination's lane looks like, for the admin API, metrics and tests.
public struct DestinationStatus: Sendable, Equatable {
    public var pending: Int
    public var inFlight: Int
    public var succeeded: Int
    public var dead: Int
    /// Paused by a 410 (until a reload).
    public var paused: Bool
    public var breakerOpen: Bool
    /// Whether more pending deliveries wait in the journal beyond the in-memory window.
    public var overflowing: Bool
    /// Paused by an operator (until resumed).
    public var operatorPaused: Bool
    /// Times a due delivery or a replay attempt waited for the rate limit (`rate_per_s`), ever.
    public var rateLimited = 0
    /// Keys held by a dead delivery (`ordering` with `on_dead: hold`), oldest first; at most
    /// `DestinationStatus.heldKeysListed` of them (`keysBlocked` counts all).
    public var heldKeys: [HeldKey] = []
    public var keysBlocked = 0
    public static let heldKeysListed = 100

    public init(pending: Int, inFlight: Int, succeeded: Int, dead: Int, paused: Bool, breakerOpen: Bool, overflowing: Bool, operatorPaused: Bool = false) {
        (self.pending, self.inFlight, self.succeeded, self.dead) = (pending, inFlight, succeeded, dead)
        (self.paused, self.breakerOpen, self.overflowing, self.operatorPaused) = (paused, breakerOpen, overflowing, operatorPaused)
    }
}

/// A replay's progress, for `GET /admin/replays/{id}`.
public struct ReplayStatus: Sendable {
    public var id: String
    public var running: Bool
    public var matchedEvents: Int
    public var deliveries: Int
    /// Deliveries started at least once.
    public var started: Int
    public var succeeded: Int
    public var dead: Int
    /// Skipped because their destination is no longer configured.
    public var skipped: Int
    public var retrying: Int
    public var inFlight: Int
    public var attempts: Int
    public var startedAt: Timestamp
    public var finishedAt: Timestamp?

    public init(
        id: String, running: Bool, matchedEvents: Int, deliveries: Int, started: Int, succeeded: Int, dead: Int, skipped: Int,
        retrying: Int, inFlight: Int, attempts: Int, startedAt: Timestamp, finishedAt: Timestamp?
    ) {
        (self.id, self.running, self.matchedEvents, self.deliveries, self.started) = (id, running, matchedEvents, deliveries, started)
        (self.succeeded, self.dead, self.skipped, self.retrying, self.inFlight) = (succeeded, dead, skipped, retrying, inFlight)
        (self.attempts, self.startedAt, self.finishedAt) = (attempts, startedAt, finishedAt)
    }
}

/// Told about every delivery attempt as it finishes (metrics). Must be quick.
public protocol DeliveryObserver: Sendable {
    func attempted(destination: String, outcome: DeliveryRecord.Outcome, duration: Duration, replay: Bool)
}

extension DeliveryEngine {
    /// Runs `body` with retention held: what it selects from the store cannot be deleted before
    /// a replay it starts has taken the events over.
    public func holdingRetention<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        await holdRetention()
        do {
            let result = try await body()
            await releaseRetention()
            return result
        } catch {
            await releaseRetention()
            throw error
        }
    }
}
