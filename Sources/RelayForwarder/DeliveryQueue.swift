import RelayCore

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
    private var heap: [(due: Int64, sequence: UInt64)] = []

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
            if let delivery = pending[top.sequence], delivery.due.milliseconds == top.due, !taken.contains(top.sequence) {
                return delivery.due
            }
            pop()
        }
        return nil
    }

    /// Deliveries handed out for an attempt and not yet back.
    private var taken: Set<UInt64> = []

    /// Takes the earliest delivery due at or before `now`, marking it in flight.
    mutating func takeDue(now: Timestamp) -> PendingDelivery? {
        guard let due = nextDue(), due <= now, let top = heap.first, let delivery = pending[top.sequence] else { return nil }
        pop()
        taken.insert(delivery.eventSequence)
        return delivery
    }

    /// An attempt came back: the delivery is schedulable again at its due time (if still pending).
    mutating func release(_ sequence: UInt64) {
        taken.remove(sequence)
        if let delivery = pending[sequence] { push((delivery.due.milliseconds, sequence)) }
    }

    private mutating func push(_ entry: (due: Int64, sequence: UInt64)) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].due < heap[parent].due else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func pop() {
        guard !heap.isEmpty else { return }
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].due < heap[smallest].due { smallest = left }
            if right < heap.count && heap[right].due < heap[smallest].due { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
