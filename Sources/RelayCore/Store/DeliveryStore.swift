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
    /// Applies the config's destinations (a reload): lanes paused by a 410 resume; deliveries
    /// to a destination that is gone wait until it returns.
    func configure(_ destinations: [String: DestinationConfig]) async
    /// Takes every delivery that may be attempted at `now`, marking each in flight.
    func claim(now: Timestamp) async -> ClaimBatch
    /// Applies and records the resolution of a claimed delivery's attempt.
    func complete(_ claim: DeliveryClaim, _ resolution: AttemptResolution, now: Timestamp, maxBackoffMillis: Int64) async
    /// Gives a claimed delivery back unattempted (shutdown cut its attempt).
    func release(_ claim: DeliveryClaim) async
    /// Records a replay's attempt (it never changes the event's own deliveries, except that a
    /// success shows in the event's delivery state).
    func recordReplayAttempt(_ record: DeliveryRecord) async
    /// The event a delivery sends.
    func event(_ reference: EventReference) async throws -> Event
    /// Every destination's lane.
    func statuses() async -> [String: DestinationStatus]
    /// Keeps retention from deleting anything until `releaseRetention()` (a replay is planned).
    func holdRetention() async
    func releaseRetention() async
}

/// The oldest event sequence the engine's running replays still send (nil if none), set by the
/// engine and read by the store's retention at any time.
public final class ReplayFloor: Sendable {
    private let value = Mutex<UInt64?>(nil)

    public init() {}

    public func set(_ sequence: UInt64?) { value.withLock { $0 = sequence } }

    public var sequence: UInt64? { value.withLock { $0 } }
}
