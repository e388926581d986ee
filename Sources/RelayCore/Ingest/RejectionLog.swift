import Synchronization

/// One event of a provider's batch the relay did not accept: where it came from, when, and why
/// (never its body).
public struct RejectionEntry: Sendable, Equatable {
    public var time: Timestamp
    public var source: String
    public var provider: String
    public var event: RejectedEvent
    /// Whether the rest of its batch was stored (a partial acknowledgement) or the whole request
    /// was refused (no event in it could be accepted).
    public var batchAccepted: Bool

    public init(time: Timestamp, source: String, provider: String, event: RejectedEvent, batchAccepted: Bool) {
        (self.time, self.source, self.provider, self.event, self.batchAccepted) = (time, source, provider, event, batchAccepted)
    }
}

/// The last `capacity` rejected events, in memory (`GET /admin/rejections`): a ring, so a flood
/// of bad batches holds a bounded amount of memory and the newest are kept.
public final class RejectionLog: Sendable {
    public let capacity: Int
    private let state: Mutex<(entries: [RejectionEntry], next: Int, total: Int)>

    public init(capacity: Int = 1_000) {
        self.capacity = max(1, capacity)
        state = Mutex((entries: [], next: 0, total: 0))
    }

    public func record(_ entries: [RejectionEntry]) {
        guard !entries.isEmpty else { return }
        state.withLock { state in
            for entry in entries {
                if state.entries.count < capacity {
                    state.entries.append(entry)
                } else {
                    state.entries[state.next] = entry
                }
                state.next = (state.next + 1) % capacity
                state.total += 1
            }
        }
    }

    /// Newest first, at most `limit`, only `source`'s when given.
    public func recent(source: String? = nil, limit: Int) -> [RejectionEntry] {
        state.withLock { state in
            var result: [RejectionEntry] = []
            let count = state.entries.count
            for step in 0..<count where result.count < limit {
                let entry = state.entries[(state.next - 1 - step + 2 * count) % count]
                if source == nil || entry.source == source { result.append(entry) }
            }
            return result
        }
    }

    /// Rejected events recorded since the start (also those the ring no longer holds).
    public var total: Int { state.withLock { $0.total } }
}
