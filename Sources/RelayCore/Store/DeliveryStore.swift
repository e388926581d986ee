import Synchronization

/// A delivery handed to the engine for one attempt: which event, to where, and how many
/// attempts were made before. A delivery is identified by (event id, destination).
public struct DeliveryClaim: Sendable, Equatable {
    public var event: EventReference
    public var eventID: String
    public var destination: String
    /// When the event was received: the retry policy's `max_age` counts from here.
    public var receivedAt: Timestamp
    public var attempts: Int
    /// The store's token for this claim: a store shared by several instances applies a result
    /// only from the holder of the current claim (a late one is recorded as fenced). 0 where
    /// claims cannot be lost (one process).
    public var token: UInt64

    public init(event: EventReference, eventID: String, destination: String, receivedAt: Timestamp, attempts: Int, token: UInt64 = 0) {
        (self.event, self.eventID, self.destination, self.receivedAt, self.attempts) = (event, eventID, destination, receivedAt, attempts)
        self.token = token
    }

    public init(_ pending: PendingDelivery, destination: String) {
        self.init(event: pending.event, eventID: pending.eventID, destination: destination, receivedAt: pending.receivedAt, attempts: pending.attempts)
    }
}

/// A claimed delivery's attempt, resolved: what `DeliveryStore.completeAll` applies.
public struct CompletedAttempt: Sendable {
    public var claim: DeliveryClaim
    public var resolution: AttemptResolution
    /// The destination's retry policy's cap on backoff (what `complete` is handed).
    public var maxBackoffMillis: Int64

    public init(_ claim: DeliveryClaim, _ resolution: AttemptResolution, maxBackoffMillis: Int64) {
        (self.claim, self.resolution, self.maxBackoffMillis) = (claim, resolution, maxBackoffMillis)
    }
}

/// What `DeliveryStore.claim` hands out: the deliveries to attempt now, and when more may be due.
public struct ClaimBatch: Sendable {
    public var claims: [DeliveryClaim]
    /// The earliest time a delivery not claimed now may be claimed; nil: only when the store
    /// reports new work or an attempt finishes.
    public var nextDue: Timestamp?

    public init(claims: [DeliveryClaim], nextDue: Timestamp?) {
        self.claims = claims
        self.nextDue = nextDue
    }
}

/// The delivery store port: where the delivery engine finds due deliveries and records what
/// became of them. The store keeps each destination's pending deliveries, what is in flight,
/// the breaker and the 410 pause (`LaneState`'s rules), so `max_in_flight` and the breaker hold
/// wherever the store's state is shared. The journal keeps them in memory, rebuilt from its
/// records; a database keeps them in rows that several instances claim from.
public protocol DeliveryStore: Sendable {
    /// Follows the store until `close()`, calling `newWork` whenever deliveries may have been
    /// added, and does the store's housekeeping (the journal: checkpoints and retention, which
    /// keeps every event from `replaysNeed`'s sequence on for the replays running).
    func run(newWork: @escaping @Sendable () -> Void, replaysNeed: ReplayFloor) async
    /// Stops following, after the engine has finished its attempts (the journal then saves a
    /// checkpoint).
    func close() async
    /// Applies the config's destinations (a reload): lanes paused by a 410 resume (an operator's
    /// pause holds); deliveries
    /// to a destination that is gone wait until it returns.
    func configure(_ destinations: [String: DestinationConfig]) async
    /// Pauses a destination (or resumes it) by an operator's hand: its deliveries wait, neither
    /// attempted nor given up, until it is resumed; attempts already in flight finish. Saved
    /// before it returns, so it holds across restarts and reloads (`configure` leaves it).
    func setOperatorPause(_ destination: String, paused: Bool) async throws
    /// Releases the ordering key that the dead delivery of `event` to `destination` holds
    /// (`on_dead: hold`): an operator skipped it, so the key's later deliveries move on and it
    /// stays dead. Saved before it returns. False when that delivery holds no key.
    func releaseHeldKey(_ destination: String, event: EventReference, eventID: String, now: Timestamp) async throws -> Bool
    /// A replay's attempt to `destination` takes a token of its rate limit (shared with the live
    /// deliveries): nil when it may start now (or there is no limit), else when to ask again.
    func takeReplayToken(_ destination: String, now: Timestamp) async -> Timestamp?
    /// Takes every delivery that may be attempted at `now`, marking each in flight.
    func claim(now: Timestamp) async -> ClaimBatch
    /// Applies and records the resolution of a claimed delivery's attempt.
    func complete(_ claim: DeliveryClaim, _ resolution: AttemptResolution, now: Timestamp, maxBackoffMillis: Int64) async
    /// Applies and records the resolutions of several attempts, in order, as `complete` does
    /// for each (a store of one process records them with one write).
    func completeAll(_ attempts: [CompletedAttempt], now: Timestamp) async
    /// Gives a claimed delivery back unattempted (shutdown cut its attempt).
    func release(_ claim: DeliveryClaim) async
    /// Records a replay's attempt (it never changes the event's own deliveries, except that a
    /// success shows in the event's delivery state and releases the ordering key its dead
    /// delivery held) and where its item now stands. Returns
    /// false when this instance no longer owns the replay (another took it over): it stops.
    func recordReplayAttempt(_ record: DeliveryRecord, position: Int, state: ReplayItemState) async -> Bool
    /// Saves a replay as it starts, owned by this instance, so that it survives it: a store
    /// shared by several instances lets another take it over (`adoptReplays`) and shows its
    /// progress everywhere. A store of one process keeps nothing.
    func saveReplay(_ replay: StoredReplay) async throws
    /// Marks a replay item skipped (its destination is no longer configured).
    func skipReplayItem(replayID: String, position: Int) async
    /// Marks a replay finished.
    func finishReplay(id: String, at time: Timestamp) async
    /// Takes over the unfinished replays whose instance stopped, with what they have left.
    func adoptReplays() async -> [StoredReplay]
    /// A replay's progress as the store knows it (one this instance does not run); nil if unknown.
    func replayStatus(id: String) async -> ReplayStatus?
    /// The event a delivery sends.
    func event(_ reference: EventReference) async throws -> Event
    /// The events of several deliveries at once, in order, each its event or why it cannot be
    /// read: the engine then starts their attempts as one batch, with no task of their own. Nil
    /// when the store reads events one at a time (a database: each attempt then runs in a task
    /// of its own, its read beside the others').
    func events(_ references: [EventReference]) async -> [Result<Event, any Error>]?
    /// Every destination's lane.
    func statuses() async -> [String: DestinationStatus]
    /// Keeps retention from deleting anything until `releaseRetention()` (a replay is planned).
    func holdRetention() async
    func releaseRetention() async
}

extension DeliveryStore {
    public func completeAll(_ attempts: [CompletedAttempt], now: Timestamp) async {
        for attempt in attempts { await complete(attempt.claim, attempt.resolution, now: now, maxBackoffMillis: attempt.maxBackoffMillis) }
    }

    public func events(_ references: [EventReference]) async -> [Result<Event, any Error>]? { nil }
}

/// Where a replay's item stands.
public enum ReplayItemState: String, Sendable {
    /// Not attempted yet, or waiting for a retry.
    case pending
    case succeeded
    case dead
    case skipped
}

/// A replay as a store keeps it: its settings, its progress, and the items it has left.
public struct StoredReplay: Sendable {
    public var id: String
    public var matchedEvents: Int
    public var concurrency: Int
    public var ratePerSecond: Double?
    public var startedAt: Timestamp
    /// Deliveries in the whole replay.
    public var total: Int
    /// What is not finished (all of it when the replay starts), in order.
    public var remaining: [ReplayItem]
    public var succeeded: Int
    public var dead: Int
    public var skipped: Int
    public var attempts: Int

    public init(
        id: String, matchedEvents: Int, concurrency: Int, ratePerSecond: Double?, startedAt: Timestamp, total: Int, remaining: [ReplayItem],
        succeeded: Int = 0, dead: Int = 0, skipped: Int = 0, attempts: Int = 0
    ) {
        (self.id, self.matchedEvents, self.concurrency, self.ratePerSecond, self.startedAt) = (id, matchedEvents, concurrency, ratePerSecond, startedAt)
        (self.total, self.remaining, self.succeeded, self.dead, self.skipped, self.attempts) = (total, remaining, succeeded, dead, skipped, attempts)
    }
}

/// The oldest event sequence the engine's running replays still send (nil if none), set by the
/// engine and read by the store's retention at any time.
public final class ReplayFloor: Sendable {
    private let value = Mutex<UInt64?>(nil)

    public init() {}

    public func set(_ sequence: UInt64?) { value.withLock { $0 = sequence } }

    public var sequence: UInt64? { value.withLock { $0 } }
}
