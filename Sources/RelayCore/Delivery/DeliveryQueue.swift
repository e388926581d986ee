/// One pending (event, destination) delivery, as a store's queue keeps it.
public struct PendingDelivery: Sendable, Equatable {
    public let event: EventReference
    public let eventID: String
    public let receivedAt: Timestamp
    public var attempts: Int
    public var due: Timestamp
    /// The event's ordering key for this destination (`ordering`); nil: not ordered.
    public var orderingKey: String?

    public init(event: EventReference, eventID: String, receivedAt: Timestamp, attempts: Int, due: Timestamp, orderingKey: String? = nil) {
        self.event = event
        self.eventID = eventID
        self.receivedAt = receivedAt
        self.attempts = attempts
        self.due = due
        self.orderingKey = orderingKey
    }

    public var eventSequence: UInt64 { event.sequence }
}

/// The pending deliveries of one destination: a table by event sequence (the truth) and a
/// min-heap by due time whose stale entries are skipped when popped.
///
/// Ordered deliveries (with an `orderingKey`) also wait in a FIFO per key, by event sequence
/// (the order the relay received them): only a key's first delivery is ever in the heap, and
/// only while its key is not held, so the next one starts only after the one before it has
/// succeeded or died. A key held by a dead delivery (`on_dead: hold`) stays blocked until
/// `releaseHold`.
public struct DeliveryQueue: Sendable {
    public private(set) var pending: [UInt64: PendingDelivery] = [:]
    private var heap = DueHeap<UInt64>()
    /// Deliveries handed out for an attempt and not yet back.
    private var taken: Set<UInt64> = []
    /// Per ordering key, its pending deliveries' sequences, oldest first.
    private var keyed: [String: KeyFIFO] = [:]
    /// Keys blocked by a dead delivery, until an operator retries or skips it.
    public private(set) var held: [String: HeldKey] = [:]

    public init() {}

    public var count: Int { pending.count }

    /// Ordering keys with a delivery pending or in flight.
    public var activeKeys: Int { keyed.count }

    public mutating func insert(_ delivery: PendingDelivery) {
        let sequence = delivery.eventSequence
        pending[sequence] = delivery
        if let key = delivery.orderingKey {
            keyed[key, default: KeyFIFO()].insert(sequence)
            // Pushed even when it is not the key's first: `isEligible` skips it then, and the
            // first is pushed again when it leaves.
        }
        heap.push(delivery.due.milliseconds, sequence)
    }

    /// Updates a delivery's attempts and due time (after a failed attempt, or from the store).
    public mutating func reschedule(_ sequence: UInt64, attempts: Int, due: Timestamp) {
        guard var delivery = pending[sequence] else { return }
        delivery.attempts = attempts
        delivery.due = due
        pending[sequence] = delivery
        if !taken.contains(sequence) { heap.push(due.milliseconds, sequence) }
    }

    /// Removes a finished delivery; its key's next delivery becomes due.
    @discardableResult
    public mutating func remove(_ sequence: UInt64) -> PendingDelivery? {
        guard let delivery = pending.removeValue(forKey: sequence) else { return nil }
        if let key = delivery.orderingKey { leaveKey(key, sequence) }
        return delivery
    }

    /// Removes a dead delivery and holds its key (`on_dead: hold`): none of the key's later
    /// deliveries starts until `releaseHold`. A delivery with no key is only removed.
    public mutating func hold(_ sequence: UInt64, since: Timestamp) {
        guard let delivery = pending[sequence] else { return }
        if let key = delivery.orderingKey {
            held[key] = HeldKey(key: key, eventID: delivery.eventID, event: delivery.event, since: since)
        }
        remove(sequence)
    }

    /// Holds `key` with the given dead delivery (read back from a store after a restart).
    public mutating func restoreHold(_ hold: HeldKey) {
        held[hold.key] = hold
    }

    /// Releases the key held by the dead delivery of event `sequence` (an operator skipped it,
    /// or its retry succeeded); returns the key, nil if that delivery holds none.
    @discardableResult
    public mutating func releaseHold(ofEvent sequence: UInt64) -> String? {
        guard let key = heldKey(ofEvent: sequence) else { return nil }
        held[key] = nil
        if let first = keyed[key]?.first, let delivery = pending[first] { heap.push(delivery.due.milliseconds, first) }
        return key
    }

    /// The key the dead delivery of event `sequence` holds, nil if none.
    public func heldKey(ofEvent sequence: UInt64) -> String? {
        held.first { $0.value.event.sequence == sequence }?.key
    }

    /// The held keys, each with how many deliveries wait behind it.
    public var heldKeys: [HeldKey] {
        held.values.map { hold in
            var hold = hold
            hold.waiting = keyed[hold.key]?.count ?? 0
            return hold
        }.sorted { ($0.since, $0.key) < ($1.since, $1.key) }
    }

    /// The earliest due time, skipping stale heap entries.
    public mutating func nextDue() -> Timestamp? {
        while let top = heap.first {
            if let delivery = pending[top.payload], delivery.due.milliseconds == top.due, !taken.contains(top.payload), isEligible(delivery) {
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

    /// An unordered delivery, or the first of its key while the key is not held.
    private func isEligible(_ delivery: PendingDelivery) -> Bool {
        guard let key = delivery.orderingKey else { return true }
        return held[key] == nil && keyed[key]?.first == delivery.eventSequence
    }

    private mutating func leaveKey(_ key: String, _ sequence: UInt64) {
        guard var fifo = keyed[key] else { return }
        let wasFirst = fifo.first == sequence
        fifo.remove(sequence)
        if fifo.isEmpty {
            keyed[key] = nil
            return
        }
        keyed[key] = fifo
        if wasFirst, held[key] == nil, let next = fifo.first, let delivery = pending[next], !taken.contains(next) {
            heap.push(delivery.due.milliseconds, next)
        }
    }
}

/// One key's pending sequences in ascending order. Deliveries arrive in sequence order (the
/// journal's, the database's), so an insert is an append and a removal is of the first, both
/// O(1); anything else (a checkpoint read back in another order) is still kept sorted.
struct KeyFIFO: Sendable {
    private var items: [UInt64] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    var first: UInt64? { isEmpty ? nil : items[head] }

    mutating func insert(_ sequence: UInt64) {
        if let last = items.last, head < items.count, sequence < last {
            let index = items[head...].firstIndex { $0 >= sequence } ?? items.count
            if index < items.count && items[index] == sequence { return }
            items.insert(sequence, at: index)
        } else if items.last != sequence || isEmpty {
            items.append(sequence)
        }
    }

    mutating func remove(_ sequence: UInt64) {
        if first == sequence {
            head += 1
        } else if let index = items[head...].firstIndex(of: sequence) {
            items.remove(at: index)
        }
        // Compact once the removed prefix is as long as what is left.
        if head > 32 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}
