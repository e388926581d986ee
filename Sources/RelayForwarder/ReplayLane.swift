import Logging
import RelayCore

/// One replay in progress: its deliveries in order, its own concurrency and rate, and the
/// failed ones waiting for their retry. Owned by the scheduler actor. A replay taken over from a
/// stopped instance starts with what that one left (`items`) and its counts so far.
final class ReplayRun {
    let id: String
    /// The deliveries not finished when this instance took the replay (all of them, usually).
    var items: [ReplayItem]
    /// Deliveries in the whole replay.
    let total: Int
    /// `total - items.count`: finished before this instance took the replay.
    let finishedBefore: Int
    let concurrency: Int
    /// Microseconds between starts, nil for no rate limit.
    let interval: Double?
    let startedAt: Timestamp
    let matchedEvents: Int
    var next = 0
    var nextStartMicros: Double = 0
    var retries = RetryHeap()
    var inFlight = 0
    var succeeded = 0
    var dead = 0
    var skipped = 0
    var attempts = 0
    var finishedAt: Timestamp?
    /// Ordered items (`ordering`): the (destination, key) pairs with an item in flight or
    /// waiting for its retry, the later items of each such key waiting their turn (oldest
    /// first), and items whose turn has come.
    var busyKeys: Set<String> = []
    var waiting: [String: [Int]] = [:]
    var ready: [Int] = []
    var readyHead = 0
    /// Items taken from `items` but parked in `waiting` or `ready`.
    var parked = 0

    init(_ stored: StoredReplay) {
        self.id = stored.id
        self.items = stored.remaining
        self.total = stored.total
        self.finishedBefore = max(0, stored.total - stored.remaining.count)
        self.matchedEvents = stored.matchedEvents
        self.concurrency = max(1, stored.concurrency)
        self.interval = stored.ratePerSecond.map { 1_000_000 / $0 }
        self.startedAt = stored.startedAt
        (succeeded, dead, skipped, attempts) = (stored.succeeded, stored.dead, stored.skipped, stored.attempts)
    }

    var isDone: Bool { next >= items.count && retries.isEmpty && inFlight == 0 && parked == 0 }

    /// The item's (destination, key), nil when it is not ordered.
    func orderKey(_ index: Int) -> String? {
        let item = items[index]
        return item.orderingKey.map { item.destination + "\u{0}" + $0 }
    }

    /// Takes the next item whose turn has come (an earlier item of its key finished).
    func takeReady() -> Int? {
        guard readyHead < ready.count else { return nil }
        defer {
            readyHead += 1
            if readyHead == ready.count { (ready, readyHead) = ([], 0) }
        }
        parked -= 1
        return ready[readyHead]
    }

    /// Whether item `index` may start now; if its key is busy it waits its turn instead.
    func claimKey(_ index: Int) -> Bool {
        guard let key = orderKey(index) else { return true }
        if busyKeys.insert(key).inserted { return true }
        waiting[key, default: []].append(index)
        parked += 1
        return false
    }

    /// Item `index` is finished (succeeded, dead or skipped): the next of its key gets its turn.
    func finishKey(_ index: Int) {
        guard let key = orderKey(index) else { return }
        if var queue = waiting[key], !queue.isEmpty {
            ready.append(queue.removeFirst())
            waiting[key] = queue.isEmpty ? nil : queue
        } else {
            busyKeys.remove(key)
        }
    }
}

/// What a replay did that its store is told after the fact.
enum ReplayNote {
    case skipped(replayID: String, position: Int)
    case finished(replayID: String, at: Timestamp)
}

/// Failed replay deliveries by due time.
struct RetryHeap {
    private var heap = DueHeap<(index: Int, attempts: Int, firstAttempt: Timestamp)>()

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var nextDue: Int64? { heap.first?.due }

    mutating func push(due: Int64, index: Int, attempts: Int, firstAttempt: Timestamp) {
        heap.push(due, (index, attempts, firstAttempt))
    }

    mutating func popDue(now: Int64) -> (index: Int, attempts: Int, firstAttempt: Timestamp)? {
        guard let top = heap.first, top.due <= now else { return nil }
        heap.removeFirst()
        return top.payload
    }
}

extension DeliveryScheduler {
    /// Running replays, and the deliveries they have not finished.
    public func replaySummary() -> (running: Int, remaining: Int) {
        let running = replays.values.filter { $0.finishedAt == nil }
        return (running.count, running.reduce(0) { $0 + ($1.items.count - $1.next) + $1.parked + $1.retries.count + $1.inFlight })
    }

    /// Starts sending `items` in a replay lane of their own (live deliveries keep their slots):
    /// at most `concurrency` at once and `ratePerSecond` starts per second. Each keeps its
    /// event's `webhook-id`, carries `x-relay-replay: 1`, retries by its destination's policy
    /// (its max_age counted from its own first attempt in the replay) and is recorded with the replay id.
    /// The store saves it first (a store shared by instances lets another one finish it); a
    /// replay the store cannot save is not started, and the error says why.
    public func startReplay(id: String, items: [ReplayItem], matchedEvents: Int, concurrency: Int, ratePerSecond: Double?) async throws {
        var numbered = items
        for index in numbered.indices { (numbered[index].position, numbered[index].attempts) = (index, 0) }
        let stored = StoredReplay(
            id: id, matchedEvents: matchedEvents, concurrency: concurrency, ratePerSecond: ratePerSecond, startedAt: clock.now(),
            total: numbered.count, remaining: numbered
        )
        try await store.saveReplay(stored)
        begin(stored)
        logger.info("replay started", metadata: ["replay_id": "\(id)", "events": "\(matchedEvents)", "deliveries": "\(items.count)"])
    }

    /// Takes over the replays of instances that stopped (a store shared by instances), at most
    /// every two seconds.
    func adoptReplays(now: Timestamp) async {
        guard now >= nextAdoption else { return }
        nextAdoption = Timestamp(milliseconds: now.milliseconds + 2_000)
        for stored in await store.adoptReplays() where replays[stored.id]?.finishedAt != nil || replays[stored.id] == nil {
            begin(stored)
            logger.info("replay taken over from a stopped instance", metadata: [
                "replay_id": "\(stored.id)", "remaining": "\(stored.remaining.count)", "deliveries": "\(stored.total)",
            ])
        }
    }

    private func begin(_ stored: StoredReplay) {
        let run = ReplayRun(stored)
        let id = stored.id
        replays[id] = run
        replayOrder.append(id)
        // Keep the progress of the last 100 finished replays (running ones are always kept).
        let finished = replayOrder.filter { replays[$0]?.finishedAt != nil }
        for old in finished.dropLast(100) {
            replays[old] = nil
        }
        replayOrder.removeAll { replays[$0] == nil }
        replaysNeed.set(oldestReplayedSequence())
        if run.isDone { finishIfDone(run) }
        wake()
    }

    /// The oldest event sequence a running replay still needs, nil if none.
    func oldestReplayedSequence() -> UInt64? {
        replays.values.filter { $0.finishedAt == nil }.compactMap { run in run.items.map(\.eventSequence).min() }.min()
    }

    /// The progress of a replay this instance runs or ran, else as the store knows it (another
    /// instance runs it).
    public func replayStatus(_ id: String) async -> ReplayStatus? {
        guard let run = replays[id] else { return await store.replayStatus(id: id) }
        return ReplayStatus(
            id: run.id, running: run.finishedAt == nil, matchedEvents: run.matchedEvents, deliveries: run.total, started: run.finishedBefore + run.next - run.parked,
            succeeded: run.succeeded, dead: run.dead, skipped: run.skipped, retrying: run.retries.count, inFlight: run.inFlight,
            attempts: run.attempts, startedAt: run.startedAt, finishedAt: run.finishedAt
        )
    }

    /// One replay attempt to start: which item of which replay, its attempt count so far, and
    /// when its first attempt was (its `max_age` counts from there).
    struct ReplayStart: Sendable {
        let replayID: String
        let index: Int
        let item: ReplayItem
        let attempts: Int
        let firstAttempt: Timestamp
        let destination: DestinationConfig
        let template: BodyTemplate?

        func startingNow(_ now: Timestamp) -> ReplayStart {
            ReplayStart(replayID: replayID, index: index, item: item, attempts: attempts, firstAttempt: now, destination: destination, template: template)
        }
    }

    /// What the running replays may start now, and when one may start next.
    func dispatchReplays(now: Timestamp) -> (starts: [ReplayStart], next: Timestamp?) {
        var starts: [ReplayStart] = []
        var earliest: Timestamp?
        let nowMicros = Double(now.milliseconds) * 1000
        for run in replays.values where run.finishedAt == nil {
            while run.inFlight < run.concurrency {
                if run.interval != nil, run.nextStartMicros > nowMicros {
                    let due = Timestamp(milliseconds: Int64(exactly: (run.nextStartMicros / 1000).rounded(.up)) ?? Int64.max / 2)
                    earliest = min(earliest ?? due, due)
                    break
                }
                let index: Int
                let attempts: Int
                let firstAttempt: Timestamp
                if let retry = run.retries.popDue(now: now.milliseconds) {
                    (index, attempts, firstAttempt) = retry
                } else if let turn = run.takeReady() {
                    index = turn
                    attempts = run.items[index].attempts
                    firstAttempt = now
                } else if run.next < run.items.count {
                    index = run.next
                    run.next += 1
                    // An ordered item whose key has an earlier one unfinished waits its turn.
                    guard run.claimKey(index) else { continue }
                    attempts = run.items[index].attempts
                    firstAttempt = now
                } else {
                    if let due = run.retries.nextDue.map(Timestamp.init(milliseconds:)) { earliest = min(earliest ?? due, due) }
                    break
                }
                // No saving up: an idle moment does not allow a burst later.
                if let interval = run.interval { run.nextStartMicros = max(run.nextStartMicros, nowMicros) + interval }
                let item = run.items[index]
                guard let destination = destinations[item.destination] else {
                    run.finishKey(index)
                    run.skipped += 1
                    replayNotes.append(.skipped(replayID: run.id, position: item.position))
                    finishIfDone(run)
                    continue
                }
                run.inFlight += 1
                run.attempts += 1
                starts.append(ReplayStart(
                    replayID: run.id, index: index, item: item, attempts: attempts, firstAttempt: firstAttempt,
                    destination: destination, template: templates[item.destination]
                ))
            }
        }
        return (starts, earliest)
    }

    /// One replay attempt: send, then resolve it. `firstAttempt` stands in for the receive time
    /// in the retry policy: a replayed delivery's `max_age` counts from its own first attempt.
    nonisolated func replayAttempt(_ start: ReplayStart) async {
        // The destination's rate limit (`rate_per_s`) holds for replays too: one bucket with its
        // live deliveries, in the store (so across instances on a shared one).
        var start = start
        let stopped = Result<TransportResponse, TransportFailure>.failure(TransportFailure(kind: .cancelled, message: "stopped while waiting for the rate limit"))
        var waited = false
        while let notBefore = await store.takeReplayToken(start.item.destination, now: clock.now()) {
            waited = true
            if await isStopping() { return await finishReplayAttempt(start, result: stopped) }
            let millis = max(1, notBefore.milliseconds - clock.now().milliseconds)
            do { try await timer.sleep(for: .milliseconds(millis)) } catch { return await finishReplayAttempt(start, result: stopped) }
        }
        if waited {
            if await isStopping() { return await finishReplayAttempt(start, result: stopped) }
            // Waiting for the rate limit is not part of a first attempt's max_age.
            if start.attempts == 0 { start = start.startingNow(clock.now()) }
        }
        let result = await send(start.item.event, attempt: start.attempts + 1, destination: start.destination, template: start.template, replay: true)
        await finishReplayAttempt(start, result: result)
    }

    private func finishReplayAttempt(_ start: ReplayStart, result: Result<TransportResponse, TransportFailure>) async {
        defer {
            running -= 1
            wake()
        }
        guard let run = replays[start.replayID] else { return }
        run.inFlight -= 1
        // Shutdown. A replay is not resumed after a restart; its recorded outcomes show how far it got.
        if case .failure(let failure) = result, failure.kind == .cancelled { return finishIfDone(run) }
        let now = clock.now()
        let item = start.item
        let resolution = AttemptResolution.resolve(
            Self.facts(of: result), eventSequence: item.eventSequence, eventID: item.eventID, destination: item.destination,
            attempt: start.attempts + 1, since: start.firstAttempt, now: now, policy: start.destination.retry, replayID: run.id, random: random
        )
        let record = resolution.record
        let state: ReplayItemState
        switch resolution.next {
        case .succeeded:
            run.succeeded += 1
            run.finishKey(start.index)
            state = .succeeded
        case .retry(let due):
            run.retries.push(due: due.milliseconds, index: start.index, attempts: record.attempt, firstAttempt: start.firstAttempt)
            state = .pending
        case .dead:
            run.dead += 1
            run.finishKey(start.index)
            state = .dead
        }
        Self.log(record, logger: logger)
        observer?.attempted(destination: item.destination, outcome: record.outcome, duration: .milliseconds(record.durationMillis), replay: true)
        guard await store.recordReplayAttempt(record, position: item.position, state: state) else {
            // Another instance took the replay over (this one was cut off from the store): it
            // goes on there; running it here too would only send everything twice.
            if replays[run.id] === run {
                replays[run.id] = nil
                logger.warning("replay taken over by another instance; stopped here", metadata: ["replay_id": "\(run.id)"])
                replaysNeed.set(oldestReplayedSequence())
            }
            return
        }
        finishIfDone(run)
        await writeReplayNotes()
    }

    /// Hands the store what replays did that it has not been told yet (skipped items, ends).
    func writeReplayNotes() async {
        while !replayNotes.isEmpty {
            let notes = replayNotes
            replayNotes = []
            for note in notes {
                switch note {
                case .skipped(let id, let position): await store.skipReplayItem(replayID: id, position: position)
                case .finished(let id, let time): await store.finishReplay(id: id, at: time)
                }
            }
        }
    }

    private func finishIfDone(_ run: ReplayRun) {
        guard run.finishedAt == nil, run.isDone else { return }
        run.finishedAt = clock.now()
        replayNotes.append(.finished(replayID: run.id, at: clock.now()))
        run.items = []  // the progress counts stay; the references go
        logger.info("replay finished", metadata: [
            "replay_id": "\(run.id)", "succeeded": "\(run.succeeded)", "dead": "\(run.dead)", "skipped": "\(run.skipped)",
        ])
        replaysNeed.set(oldestReplayedSequence())
    }
}
