import Logging
import RelayCore

/// One replay in progress: its deliveries in order, its own concurrency and rate, and the
/// failed ones waiting for their retry. Owned by the scheduler actor.
final class ReplayRun {
    let id: String
    var items: [ReplayItem]
    /// `items.count`, kept when the items are dropped at the end.
    let total: Int
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

    init(id: String, items: [ReplayItem], matchedEvents: Int, concurrency: Int, ratePerSecond: Double?, startedAt: Timestamp) {
        self.id = id
        self.items = items
        self.total = items.count
        self.matchedEvents = matchedEvents
        self.concurrency = max(1, concurrency)
        self.interval = ratePerSecond.map { 1_000_000 / $0 }
        self.startedAt = startedAt
    }

    var isDone: Bool { next >= items.count && retries.isEmpty && inFlight == 0 }
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
        return (running.count, running.reduce(0) { $0 + ($1.total - $1.next) + $1.retries.count + $1.inFlight })
    }

    /// Starts sending `items` in a replay lane of their own (live deliveries keep their slots):
    /// at most `concurrency` at once and `ratePerSecond` starts per second. Each keeps its
    /// event's `webhook-id`, carries `x-relay-replay: 1`, retries by its destination's policy
    /// (its max_age counted from its own first attempt in the replay) and is recorded with the replay id.
    public func startReplay(id: String, items: [ReplayItem], matchedEvents: Int, concurrency: Int, ratePerSecond: Double?) async {
        let run = ReplayRun(id: id, items: items, matchedEvents: matchedEvents, concurrency: concurrency, ratePerSecond: ratePerSecond, startedAt: clock.now())
        replays[id] = run
        replayOrder.append(id)
        // Keep the progress of the last 100 finished replays (running ones are always kept).
        let finished = replayOrder.filter { replays[$0]?.finishedAt != nil }
        for old in finished.dropLast(100) {
            replays[old] = nil
        }
        replayOrder.removeAll { replays[$0] == nil }
        logger.info("replay started", metadata: ["replay_id": "\(id)", "events": "\(matchedEvents)", "deliveries": "\(items.count)"])
        replaysNeed.set(oldestReplayedSequence())
        if run.isDone { finishIfDone(run) }
        wake()
    }

    /// The oldest event sequence a running replay still needs, nil if none.
    func oldestReplayedSequence() -> UInt64? {
        replays.values.filter { $0.finishedAt == nil }.compactMap { run in run.items.map(\.eventSequence).min() }.min()
    }

    public func replayStatus(_ id: String) -> ReplayStatus? {
        guard let run = replays[id] else { return nil }
        return ReplayStatus(
            id: run.id, running: run.finishedAt == nil, matchedEvents: run.matchedEvents, deliveries: run.total, started: run.next,
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
                } else if run.next < run.items.count {
                    index = run.next
                    attempts = 0
                    firstAttempt = now
                    run.next += 1
                } else {
                    if let due = run.retries.nextDue.map(Timestamp.init(milliseconds:)) { earliest = min(earliest ?? due, due) }
                    break
                }
                // No saving up: an idle moment does not allow a burst later.
                if let interval = run.interval { run.nextStartMicros = max(run.nextStartMicros, nowMicros) + interval }
                let item = run.items[index]
                guard let destination = destinations[item.destination] else {
                    run.skipped += 1
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
        switch resolution.next {
        case .succeeded:
            run.succeeded += 1
        case .retry(let due):
            run.retries.push(due: due.milliseconds, index: start.index, attempts: record.attempt, firstAttempt: start.firstAttempt)
        case .dead:
            run.dead += 1
        }
        Self.log(record, logger: logger)
        observer?.attempted(destination: item.destination, outcome: record.outcome, duration: .milliseconds(record.durationMillis), replay: true)
        await store.recordReplayAttempt(record)
        finishIfDone(run)
    }

    private func finishIfDone(_ run: ReplayRun) {
        guard run.finishedAt == nil, run.isDone else { return }
        run.finishedAt = clock.now()
        run.items = []  // the progress counts stay; the references go
        logger.info("replay finished", metadata: [
            "replay_id": "\(run.id)", "succeeded": "\(run.succeeded)", "dead": "\(run.dead)", "skipped": "\(run.skipped)",
        ])
        replaysNeed.set(oldestReplayedSequence())
    }
}
