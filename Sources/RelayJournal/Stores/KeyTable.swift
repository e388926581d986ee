import RelayCore
/// The de-duplication index's table: 128-bit keys to entries, in flat arrays instead of a
/// `Dictionary` (which, at a million keys, rounds up to two million 40-byte buckets).
///
/// Open addressing with linear probing and backward-shift deletion. A slot is four `UInt64`s
/// (key high/low, packed relay id high/low) plus the time in a parallel `UInt32` array: 36 bytes
/// a slot at a load factor of at most 0.8, about 45 bytes per key. The key (0, 0) marks an empty
/// slot; `DeduplicationIndex.Key` never produces it.
struct KeyTable {
    private(set) var count = 0
    private var words: [UInt64]
    private var times: [UInt32]
    private var capacity: Int

    init(minimumCapacity: Int = 64) {
        capacity = max(16, minimumCapacity)
        words = [UInt64](repeating: 0, count: capacity * 4)
        times = [UInt32](repeating: 0, count: capacity)
    }

    /// The key's first slot: the low word scaled to the capacity (keys are already uniform hashes).
    private func home(_ low: UInt64) -> Int {
        Int(truncatingIfNeeded: low.multipliedFullWidth(by: UInt64(capacity)).high)
    }

    private func isEmpty(_ slot: Int) -> Bool { words[slot * 4] == 0 && words[slot * 4 + 1] == 0 }

    private func slot(of key: DeduplicationIndex.Key) -> Int? {
        var slot = home(key.low)
        while !isEmpty(slot) {
            if words[slot * 4] == key.high && words[slot * 4 + 1] == key.low { return slot }
            slot += 1
            if slot == capacity { slot = 0 }
        }
        return nil
    }

    subscript(key: DeduplicationIndex.Key) -> DeduplicationIndex.Entry? {
        get {
            guard let slot = slot(of: key) else { return nil }
            return DeduplicationIndex.Entry(id: EventIDGenerator.Packed(high: words[slot * 4 + 2], low: words[slot * 4 + 3]), seconds: times[slot])
        }
        set {
            if let newValue { insert(key, newValue) } else { remove(key) }
        }
    }

    private mutating func insert(_ key: DeduplicationIndex.Key, _ entry: DeduplicationIndex.Entry) {
        if let slot = slot(of: key) {
            store(slot, key, entry)
            return
        }
        if (count + 1) * 5 > capacity * 4 { grow() }
        var slot = home(key.low)
        while !isEmpty(slot) {
            slot += 1
            if slot == capacity { slot = 0 }
        }
        store(slot, key, entry)
        count += 1
    }

    private mutating func store(_ slot: Int, _ key: DeduplicationIndex.Key, _ entry: DeduplicationIndex.Entry) {
        words[slot * 4] = key.high
        words[slot * 4 + 1] = key.low
        words[slot * 4 + 2] = entry.id.high
        words[slot * 4 + 3] = entry.id.low
        times[slot] = entry.seconds
    }

    private mutating func remove(_ key: DeduplicationIndex.Key) {
        guard var hole = slot(of: key) else { return }
        count -= 1
        // Backward shift: pull later entries of the run into the hole when their home allows it.
        var next = hole
        while true {
            next += 1
            if next == capacity { next = 0 }
            if isEmpty(next) { break }
            let wanted = home(words[next * 4 + 1])
            // Can the entry at `next` move to `hole`? Only if its home is not in (hole, next].
            let between = hole <= next ? (wanted > hole && wanted <= next) : (wanted > hole || wanted <= next)
            if between { continue }
            for word in 0..<4 { words[hole * 4 + word] = words[next * 4 + word] }
            times[hole] = times[next]
            hole = next
        }
        for word in 0..<4 { words[hole * 4 + word] = 0 }
        times[hole] = 0
    }

    private mutating func grow() {
        let old = self
        self = KeyTable(minimumCapacity: capacity + capacity / 2 + 16)
        old.forEach { key, entry in insert(key, entry) }
    }

    /// Every key and entry, in no particular order.
    func forEach(_ body: (DeduplicationIndex.Key, DeduplicationIndex.Entry) throws -> Void) rethrows {
        for slot in 0..<capacity where !isEmpty(slot) {
            try body(
                DeduplicationIndex.Key(high: words[slot * 4], low: words[slot * 4 + 1]),
                DeduplicationIndex.Entry(id: EventIDGenerator.Packed(high: words[slot * 4 + 2], low: words[slot * 4 + 3]), seconds: times[slot])
            )
        }
    }
}
