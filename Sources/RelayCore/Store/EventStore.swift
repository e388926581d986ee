/// Where a stored event is. Outside its store only `sequence` means anything: the event's place
/// in the store's order (the admin API's `sequence`, what a mark counts); `locator` is the
/// store's own (the journal: segment and offset), opaque to everyone else.
public struct EventReference: Sendable, Hashable {
    public var sequence: UInt64
    public var locator: Locator

    /// Two words a store may use as it likes.
    public struct Locator: Sendable, Hashable {
        public var high: UInt64
        public var low: UInt64

        public init(high: UInt64, low: UInt64) {
            self.high = high
            self.low = low
        }
    }

    public init(sequence: UInt64, locator: Locator = Locator(high: 0, low: 0)) {
        self.sequence = sequence
        self.locator = locator
    }
}

/// One event as the admin API lists it: its normalized fields, where it went, and how its
/// deliveries stand.
public struct EventSummary: Sendable {
    public var reference: EventReference
    public var event: Event
    public var decision: RoutingDecision?
    /// Per routed destination, the latest outcome (pending until one succeeds or dies).
    public var deliveries: [(destination: String, state: DeliveryState)]

    public init(reference: EventReference, event: Event, decision: RoutingDecision?, deliveries: [(destination: String, state: DeliveryState)]) {
        self.reference = reference
        self.event = event
        self.decision = decision
        self.deliveries = deliveries
    }

    public var sequence: UInt64 { reference.sequence }

    /// Dead if any delivery is dead, else pending if any is pending, else succeeded; nil when
    /// the event was routed nowhere.
    public var deliveryState: DeliveryState? { Self.overall(deliveries.map(\.state)) }

    public static func overall(_ states: [DeliveryState]) -> DeliveryState? {
        if states.isEmpty { return nil }
        if states.contains(.dead) { return .dead }
        if states.contains(.pending) { return .pending }
        return .succeeded
    }
}

/// A page of events, newest first. `nextCursor` (opaque) continues after the last one; new
/// events never shift a page.
public struct EventPage: Sendable {
    public var events: [EventSummary]
    public var nextCursor: String?

    public init(events: [EventSummary], nextCursor: String?) {
        self.events = events
        self.nextCursor = nextCursor
    }
}

/// One event with every recorded attempt of every delivery, replays included, oldest first.
public struct EventDetail: Sendable {
    public var summary: EventSummary
    public var attempts: [DeliveryRecord]

    public init(summary: EventSummary, attempts: [DeliveryRecord]) {
        self.summary = summary
        self.attempts = attempts
    }
}

/// What a replay computes from each event it selects while the store reads it: where the
/// routes in force send it, and its ordering key per ordered destination.
public struct PreparedRouting: Sendable {
    public var destinations: [String]
    public var orderingKeys: [String: String]

    public init(destinations: [String], orderingKeys: [String: String] = [:]) {
        self.destinations = destinations
        self.orderingKeys = orderingKeys
    }

    public static let none = PreparedRouting(destinations: [])
}

/// A stored event found by `EventStore.matches`: a compact reference, never the body.
public struct StoredEventMatch: Sendable {
    public var reference: EventReference
    public var id: String
    public var receivedAt: Timestamp
    public var decision: RoutingDecision?
    public var deliveries: [(destination: String, state: DeliveryState)]
    /// What `prepare` computed from the event while it was read.
    public var prepared: PreparedRouting

    public init(
        reference: EventReference, id: String, receivedAt: Timestamp, decision: RoutingDecision?,
        deliveries: [(destination: String, state: DeliveryState)], prepared: PreparedRouting
    ) {
        self.reference = reference
        self.id = id
        self.receivedAt = receivedAt
        self.decision = decision
        self.deliveries = deliveries
        self.prepared = prepared
    }

    public var sequence: UInt64 { reference.sequence }
    public var deliveryState: DeliveryState? { EventSummary.overall(deliveries.map(\.state)) }
}

/// One (event, destination) delivery as `GET /admin/deliveries` lists it.
public struct DeliveryListing: Sendable {
    public var event: EventReference
    public var eventID: String
    public var destination: String
    public var state: DeliveryState
    public var receivedAt: Timestamp

    public init(event: EventReference, eventID: String, destination: String, state: DeliveryState, receivedAt: Timestamp) {
        self.event = event
        self.eventID = eventID
        self.destination = destination
        self.state = state
        self.receivedAt = receivedAt
    }
}

/// A page of deliveries, newest event first; a page keeps all chosen deliveries of its last event.
public struct DeliveryPage: Sendable {
    public var deliveries: [DeliveryListing]
    public var nextCursor: String?

    public init(deliveries: [DeliveryListing], nextCursor: String?) {
        self.deliveries = deliveries
        self.nextCursor = nextCursor
    }
}

/// The event store port: where the admin API, `relay events`, the console and replays find
/// stored events. The journal is the single-node implementation; every implementation passes
/// the same conformance suite. Cursors are opaque strings of the store's own; a malformed one
/// is a `FilterError` on `cursor`.
public protocol EventStore: Sendable {
    /// Events matching `filter`, newest first, at most `limit`.
    func page(filter: EventFilter, cursor: String?, limit: Int) async throws -> EventPage

    /// One event by relay id, with its attempts; nil if unknown.
    func detail(id: String) async throws -> EventDetail?

    /// Deliveries of events matching `filter` (its `deliveryState` is ignored), in `state` and
    /// to one of `destinations` when given, newest event first, at least `limit` unless the end
    /// is reached (the last event's chosen deliveries stay together).
    func deliveries(filter: EventFilter, state: DeliveryState?, destinations: Set<String>, cursor: String?, limit: Int) async throws -> DeliveryPage

    /// Every event matching `filter` stored up to `mark` (see `mark()`), newest first, with
    /// `prepare`'s result computed from the event while it was read (a replay routes it there).
    /// Stop iterating to stop the scan.
    func matches(filter: EventFilter, through mark: UInt64, prepare: @escaping @Sendable (Event) -> PreparedRouting) -> AsyncThrowingStream<StoredEventMatch, any Error>

    /// The stored event `reference` points to.
    func event(_ reference: EventReference) async throws -> Event

    /// Where the store stands now: `matches(through:)` with this mark sees exactly the events
    /// stored so far, never one stored later.
    func mark() async throws -> UInt64
}

/// Builds a `DeliveryPage` from events read newest first, the same way in every store: an
/// event's chosen deliveries stay together, and the page ends before the event that would go
/// past `limit` (its cursor starts at that event).
public struct DeliveryPageBuilder {
    public let state: DeliveryState?
    public let destinations: Set<String>
    public let limit: Int
    public private(set) var page = DeliveryPage(deliveries: [], nextCursor: nil)

    public init(state: DeliveryState?, destinations: Set<String>, limit: Int) {
        self.state = state
        self.destinations = destinations
        self.limit = limit
    }

    /// Adds the chosen deliveries of the next event; false once the page is full (stop reading).
    public mutating func add(_ reference: EventReference, id: String, receivedAt: Timestamp, deliveries: [(destination: String, state: DeliveryState)]) -> Bool {
        let chosen = deliveries.filter { (state == nil || $0.state == state) && (destinations.isEmpty || destinations.contains($0.destination)) }
        if chosen.isEmpty { return true }
        if page.deliveries.count >= limit {
            page.nextCursor = String(reference.sequence + 1)
            return false
        }
        for delivery in chosen {
            page.deliveries.append(DeliveryListing(event: reference, eventID: id, destination: delivery.destination, state: delivery.state, receivedAt: receivedAt))
        }
        return true
    }
}
