/// The last committed records, in sequence order, kept in memory up to a byte budget: a fresh
/// event reaches the delivery engine (the tail) and its sender (the body) from here, and disk is
/// read only for what has dropped out of it (after a restart, a tail that fell behind, a
/// destination's overflow beyond its window, replays). The payloads are the arrays the writer
/// wrote, shared rather than copied.
struct RecentRecords {
    /// `storage[head...]` are the records held; the dropped ones before `head` are cut away
    /// once they are the larger part.
    private var storage: [JournalRecord] = []
    private var head = 0
    private var bytes = 0

    private var first: JournalRecord? { head < storage.count ? storage[head] : nil }

    /// Adds `written` (the next records in sequence) and drops the oldest beyond `budget` bytes
    /// (one record's worth of bookkeeping counted with each payload).
    mutating func append(_ written: [JournalRecord], budget: Int) {
        guard budget > 0 else { return }
        if let last = storage.last, head < storage.count, let next = written.first, next.sequence != last.sequence + 1 {
            removeAll()  // not contiguous (cannot happen while the writer writes in order): start over
        }
        for record in written {
            storage.append(record)
            bytes += record.payload.count + 64
        }
        while bytes > budget, head < storage.count {
            bytes -= storage[head].payload.count + 64
            head += 1
        }
        if head > 1_024 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    mutating func removeAll() {
        storage.removeAll()
        head = 0
        bytes = 0
    }

    /// The records after `sequence` (at most `limit`), or nil if the one right after it is no
    /// longer (or not yet) held.
    func records(after sequence: UInt64, limit: Int) -> [JournalRecord]? {
        guard let first, first.sequence <= sequence + 1, let last = storage.last, last.sequence > sequence else { return nil }
        let start = head + Int(sequence + 1 - first.sequence)
        return Array(storage[start..<min(storage.count, start + limit)])
    }

    /// The record starting at `position`, if held (positions grow with sequence numbers).
    func record(at position: JournalPosition) -> JournalRecord? {
        guard let first, let last = storage.last, first.position <= position, position <= last.position else { return nil }
        var low = head, high = storage.count - 1
        while low <= high {
            let middle = (low + high) / 2
            let candidate = storage[middle].position
            if candidate == position { return storage[middle] }
            if candidate < position { low = middle + 1 } else { high = middle - 1 }
        }
        return nil
    }
}
