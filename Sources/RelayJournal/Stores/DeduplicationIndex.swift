import RelayCore
import Crypto
import Synchronization

/// Remembers which provider events the relay already stored, so a provider's retry is
/// acknowledged without being stored or routed again.
///
/// Memory is bounded: each key is kept for `window` (default 7 days) and at most `maxKeys` keys
/// (default 1,000,000; the oldest go first), at roughly 80 bytes each: a 128-bit hash of
/// `source + provider event id`, the original relay id packed into 128 bits, and the time.
/// A retry that arrives after its key has been evicted is stored again (at-least-once).
///
/// Concurrent copies of one event: the first request *claims* the key; a second one waits for
/// the first to finish and is then a duplicate (or, if the first failed, claims it itself).
public final class DeduplicationIndex: Sendable {
    public struct Configuration: Sendable {
        public var windowMillis: Int64
        public var maxKeys: Int

        public init(windowMillis: Int64 = 7 * 86_400_000, maxKeys: Int = 1_000_000) {
            self.windowMillis = windowMillis
            self.maxKeys = maxKeys
        }
    }

    /// A 128-bit digest of source and provider event id.
    public struct Key: Hashable, Sendable {
        let high: UInt64
        let low: UInt64

        public init(source: String, providerEventID: String) {
            let digest = SHA256.hash(data: Array(source.utf8) + [0] + Array(providerEventID.utf8))
            var high: UInt64 = 0
            var low: UInt64 = 0
            for (index, byte) in digest.prefix(16).enumerated() {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self.init(high: high, low: low)
        }

        /// (0, 0) is the key table's empty slot, so it is stored as (0, 1) (a digest that starts
        /// with 128 zero bits is not going to happen, but must not break the table if it does).
        init(high: UInt64, low: UInt64) {
            self.high = high
            self.low = high == 0 && low == 0 ? 1 : low
        }
    }

    struct Entry: Sendable {
        var id: EventIDGenerator.Packed
        var seconds: UInt32
    }

    struct State {
        var stored = KeyTable()
        /// Keys in insertion order, for expiry; `head` is the oldest still in use.
        var order: [(key: Key, seconds: UInt32)] = []
        var head = 0
        /// Claimed keys, with what to run once each is committed or released.
        var pending: [Key: [@Sendable () -> Void]] = [:]
    }

    /// The outcome of claiming a key.
    public enum Claim: Equatable, Sendable {
        /// Not seen: the caller now owns the key and must `commit` or `release` it.
        case new
        /// Already stored as this relay event.
        case duplicate(id: String)
        /// Another request holds the key right now; `whenReleased` (or `waitWhilePending`) and try again.
        case busy
    }

    public let configuration: Configuration
    private let state = Mutex(State())

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public var count: Int { state.withLock { $0.stored.count } }

    public func claim(_ key: Key, now: Timestamp) -> Claim {
        state.withLock { state in
            expire(&state, now: now)
            if let entry = state.stored[key] { return .duplicate(id: EventIDGenerator.unpack(entry.id)) }
            if state.pending[key] != nil { return .busy }
            state.pending[key] = []
            return .new
        }
    }

    /// Runs `action` once `key` is no longer claimed by another request: later, on the thread
    /// that commits or releases it, or at once if it is not claimed now.
    public func whenReleased(_ key: Key, _ action: @escaping @Sendable () -> Void) {
        let waiting = state.withLock { state -> Bool in
            guard state.pending[key] != nil else { return false }
            state.pending[key]!.append(action)
            return true
        }
        if !waiting { action() }
    }

    /// Returns once `key` is no longer claimed by another request.
    public func waitWhilePending(_ key: Key) async {
        await withCheckedContinuation { continuation in
            whenReleased(key) { continuation.resume() }
        }
    }

    /// Records claimed keys as stored (after the journal append succeeded).
    public func commit(_ entries: [(key: Key, id: String, receivedAt: Timestamp)]) {
        let waiters = state.withLock { state in
            var waiters: [@Sendable () -> Void] = []
            for entry in entries {
                waiters += state.pending.removeValue(forKey: entry.key) ?? []
                insert(&state, key: entry.key, id: entry.id, receivedAt: entry.receivedAt)
            }
            return waiters
        }
        for waiter in waiters { waiter() }
    }

    /// Gives up claimed keys without storing them (the append failed, or the request backs off).
    public func release(_ keys: [Key]) {
        let waiters = state.withLock { state in
            keys.flatMap { state.pending.removeValue(forKey: $0) ?? [] }
        }
        for waiter in waiters { waiter() }
    }

    /// Adds a key found in the journal at start-up.
    public func recover(key: Key, id: String, receivedAt: Timestamp, now: Timestamp) {
        guard now.milliseconds - receivedAt.milliseconds <= configuration.windowMillis else { return }
        state.withLock { state in
            if state.stored[key] == nil { insert(&state, key: key, id: id, receivedAt: receivedAt) }
        }
    }

    private func insert(_ state: inout State, key: Key, id: String, receivedAt: Timestamp) {
        let seconds = UInt32(clamping: receivedAt.seconds)
        let known = state.stored[key]?.seconds == seconds
        state.stored[key] = Entry(id: EventIDGenerator.pack(id), seconds: seconds)
        // Already in the order list with this time (the journal tail saw it first): once is enough.
        if !known { state.order.append((key, seconds)) }
        while state.stored.count > configuration.maxKeys {
            evictOldest(&state)
        }
    }

    private func expire(_ state: inout State, now: Timestamp) {
        let cutoff = now.seconds - configuration.windowMillis / 1000
        while state.head < state.order.count, Int64(state.order[state.head].seconds) < cutoff {
            evictOldest(&state)
        }
    }

    private func evictOldest(_ state: inout State) {
        guard state.head < state.order.count else { return }
        let oldest = state.order[state.head]
        if state.stored[oldest.key]?.seconds == oldest.seconds { state.stored[oldest.key] = nil }
        state.head += 1
        // Compact the order list once its dead prefix is as large as the live part.
        if state.head > 1024 && state.head * 2 > state.order.count {
            state.order.removeFirst(state.head)
            state.head = 0
        }
    }
}

extension DeduplicationIndex: CheckpointParticipant {
    public var checkpointSection: String { "deduplication" }

    /// Events read from the journal are added if missing: the request that stored one commits its
    /// key itself, but only after its append returned, so a checkpoint taken in between must not
    /// depend on that.
    public func observe(_ event: EventHeader, now: Timestamp) {
        guard !event.providerEventID.isEmpty else { return }
        recover(key: Key(source: event.source, providerEventID: event.providerEventID), id: event.id, receivedAt: event.receivedAt, now: now)
    }

    /// Copies the tables (copy-on-write, so the lock is held only for the copy) and encodes them
    /// later: per key, oldest first, its 128-bit hash, the relay id packed in 128 bits and the time.
    public func checkpointSnapshot() -> @Sendable () -> [UInt8] {
        let (stored, order, head) = state.withLock { ($0.stored, $0.order, $0.head) }
        return {
            // Every stored key has exactly one order entry with its time, so the count is known
            // up front and the section is built in one buffer.
            var writer = ByteWriter(capacity: 8 + stored.count * 36)
            writer.write(UInt64(stored.count))
            var written = 0
            for index in head..<order.count {
                let (key, seconds) = order[index]
                // A key inserted again has an older, stale order entry: skip it.
                guard let entry = stored[key], entry.seconds == seconds else { continue }
                writer.write(key.high)
                writer.write(key.low)
                writer.write(entry.id.high)
                writer.write(entry.id.low)
                writer.write(seconds)
                written += 1
            }
            guard written == stored.count else {
                // Not expected; keep the section consistent anyway.
                var fixed = ByteWriter(capacity: 8)
                fixed.write(UInt64(written))
                return fixed.bytes + writer.bytes.dropFirst(8)
            }
            return writer.bytes
        }
    }

    public func compact() {
        state.withLock { state in
            let room = roomFor(state.stored.count)
            var table = KeyTable(minimumCapacity: room + room / 4 + 16)
            state.stored.forEach { key, entry in table[key] = entry }
            state.stored = table
            var order: [(key: Key, seconds: UInt32)] = []
            order.reserveCapacity(room)
            order.append(contentsOf: state.order[state.head...])
            state.order = order
            state.head = 0
        }
    }

    /// How many keys to size the tables for when `count` are stored: room to grow by half (so
    /// the first live requests do not rebuild a table of a million keys under the lock), but
    /// never beyond the cap, where eviction keeps the count constant.
    private func roomFor(_ count: Int) -> Int {
        min(count + max(count / 2, 1024), configuration.maxKeys + 1)
    }

    public func restore(checkpoint bytes: ArraySlice<UInt8>, now: Timestamp) throws {
        var reader = ByteReader(bytes)
        let count = Int(clamping: try reader.read(UInt64.self))
        guard count <= bytes.count / 36 else { throw CheckpointError("deduplication: bad key count \(count)") }
        let cutoff = now.seconds - configuration.windowMillis / 1000
        var restored = State()
        let room = roomFor(count)
        restored.stored = KeyTable(minimumCapacity: room + room / 4 + 16)
        restored.order.reserveCapacity(room)
        for _ in 0..<count {
            let key = Key(high: try reader.read(), low: try reader.read())
            let id = EventIDGenerator.Packed(high: try reader.read(), low: try reader.read())
            let seconds: UInt32 = try reader.read()
            guard Int64(seconds) >= cutoff, restored.stored[key] == nil else { continue }
            restored.stored[key] = Entry(id: id, seconds: seconds)
            restored.order.append((key, seconds))
        }
        while restored.stored.count > configuration.maxKeys { evictOldest(&restored) }
        state.withLock { current in
            // Keys added since (none at start-up) are kept.
            current.stored.forEach { key, entry in
                guard restored.stored[key] == nil else { return }
                restored.stored[key] = entry
                restored.order.append((key, entry.seconds))
            }
            restored.pending = current.pending
            current = restored
        }
    }
}
