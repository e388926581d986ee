import RelayCore
import RelayJournal

/// One pending (event, destination) delivery.
struct PendingDelivery: Sendable {
    let eventSequence: UInt64
    let eventPosition: JournalPosition
    let eventID: String
    let receivedAt: Timestamp
    var attempts: Int
    var due: Timestamp
}

/// The pending deliveries of one destination: a table by event sequence (the truth) and a
/// min-heap by due time whose stale entries are skipped when popped.
struct DeliveryQueue {
    private(set) var pending: [UInt64: PendingDelivery] = [:]
    private var heap = DueHeap<UInt64>()

    var count: Int { pending.count }

    mutating func insert(_ delivery: PendingDelivery) {
        pending[delivery.eventSequence] = delivery
        push((delivery.due.milliseconds, delivery.eventSequence))
    }

    /// Updates a delivery's attempts and due time (after a failed attempt, or from the journal).
    mutating func reschedule(_ sequence: UInt64, attempts: Int, due: Timestamp) {
        guard var delivery = pending[sequence] else { return }
        delivery.attempts = attempts
        delivery.due = due
        pending[sequence] = delivery
        if !taken.contains(sequence) { push((due.milliseconds, sequence)) }
    }

    @discardableResult
    mutating func remove(_ sequence: UInt64) -> PendingDelivery? {
        pending.removeValue(forKey: sequence)
    }

    /// The earliest due time, skipping stale heap entries.
    mutating func nextDue() -> Timestamp? {
        while let top = heap.first {
            if let delivery = pending[top.payload], delivery.due.milliseconds == top.due, !taken.contains(top.payload) {
                return delivery.due
            }
            heap.removeFirst()
        }
        return nil
    }

    /// Deliveries handed out for an attempt and not yet back.
    private var taken: Set<UInt64> = []

    /// Takes the earliest delivery due at or before `now`, marking it in flight.
    mutating func takeDue(now: Timestamp) -> PendingDelivery? {
        guard let due = nextDue(), due <= now, let top = heap.first, let delivery = pending[top.payload] else { return nil }
        heap.removeFirst()
        taken.insert(delivery.eventSequence)
        return delivery
    }

    /// An attempt came back: the delivery is schedulable again at its due time (if still pending).
    mutating func release(_ sequence: UInt64) {
        taken.remove(sequence)
        if let delivery = pending[sequence] { push((delivery.due.milliseconds, sequence)) }
    }

    private mutating func push(_ entry: (due: Int64, sequence: UInt64)) {
        heap.push(entry.due, entry.sequence)
    }
}
