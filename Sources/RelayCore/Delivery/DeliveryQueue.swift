/// One pending (event, destination) delivery, as a store's queue keeps it.
public struct PendingDelivery: Sendable, Equatable {
    public let event: EventReference
    public let eventID: String
    public let receivedAt: Timestamp
    public var attempts: Int
    public var due: Timestamp

    public init(event: EventReference, eventID: String, receivedAt: Timestamp, attempts: Int, due: Timestamp) {
        self.event = event
        self.eventID = eventID
        self.receivedAt = receivedAt
        self.attempts = attempts
        self.due = due
    }

    public var eventSequence: UInt64 { event.sequence }
}

/// The pending deliveries of one destination: a table by event sequence (the truth) and a
/// min-heap by due time whose stale entries are skipped when popped.
public struct DeliveryQueue: Sendable {
    public private(set) var pending: [UInt64: PendingDelivery] = [:]
    private var heap = DueHeap<UInt64>()
    /// Deliveries handed out for an attempt and not yet back.
    private var taken: Set<UInt64> = []

    public init() {}

    public var count: Int { pending.count }

    public mutating func insert(_ delivery: PendingDelivery) {
        pending[delivery.eventSequence] = delivery
        heap.push(delivery.due.milliseconds, delivery.eventSequence)
    }

    /// Updates a delivery's attempts and due time (after a failed attempt, or from the store).
    public mutating func reschedule(_ sequence: UInt64, attempts: Int, due: Timestamp) {
        guard var delivery = pending[sequence] else { return }
        delivery.attempts = attempts
        delivery.due = due
        pending[sequence] = delivery
        if !taken.contains(sequence) { heap.push(due.milliseconds, sequence) }
    }

    @discardableResult
    public mutating func remove(_ sequence: UInt64) -> PendingDelivery? {
        pending.removeValue(forKey: sequence)
    }

    /// The earliest due time, skipping stale heap entries.
    public mutating func nextDue() -> Timestamp? {
        while let top = heap.first {
            if let delivery = pending[top.payload], delivery.due.milliseconds == top.due, !taken.contains(top.payload) {
                return delivery.due
            }
            heap.removeFirst()
        }
        return nil
    }

    /// Takes the earliest delivery due at or before `now`, marking it in flight.
    public mutating func takeDue(now: Timestamp) -> PendingDelivery? {
        guard let due = nextDue(), due <= now, let top = heap.first, let delivery = pending[top.payload] else { return nil }
        heap.removeFirst()
        taken.insert(delivery.eventSequence)
        return delivery
    }

    /// An attempt came back: the delivery is schedulable again at its due time (if still pending).
    public mutating func release(_ sequence: UInt64) {
        taken.remove(sequence)
        if let delivery = pending[sequence] { heap.push(delivery.due.milliseconds, sequence) }
    }
}
