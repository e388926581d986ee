import Logging
import RelayCore
import RelayJournal

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
    /// (its max_age counted from its own first attempt in the replay) and is journaled with the replay id.
    public func startReplay(id: String, items: [ReplayItem], matchedEvents: Int, concurrency: Int, ratePerSecond: Double?) {
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

    /// Starts what the running replays may start now; returns when one may start next.
    func dispatchReplays(now: Timestamp) -> Timestamp? {
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
                guard let lane = ledger.lanes[item.destination], let destination = lane.destination else {
                    run.skipped += 1
                    finishIfDone(run)
                    continue
                }
                startReplayAttempt(run, index: index, attempts: attempts, firstAttempt: firstAttempt, destination: destination, template: lane.template)
            }
        }
        return earliest
    }

    /// `firstAttempt` stands in for the receive time in the retry policy: a replayed delivery's
    /// `max_age` counts from its own first attempt.
    private func startReplayAttempt(_ run: ReplayRun, index: Int, attempts: Int, firstAttempt: Timestamp, destination: DestinationConfig, template: BodyTemplate?) {
        let item = run.items[index]
        run.inFlight += 1
        run.attempts += 1
        nextAttemptID += 1
        let id = nextAttemptID
        let delivery = PendingDelivery(
            eventSequence: item.eventSequence, eventPosition: JournalPosition(item.event.locator), eventID: item.eventID,
            receivedAt: firstAttempt, attempts: attempts, due: clock.now()
        )
        self.attempts[id] = Task {
            let result = await self.send(delivery, destination: destination, template: template, replay: true)
            self.finishReplayAttempt(id: id, run: run, index: index, delivery: delivery, policy: destination.retry, result: result)
        }
    }

    private func finishReplayAttempt(id: UInt64, run: ReplayRun, index: Int, delivery: PendingDelivery, policy: RetryPolicy, result: Result<TransportResponse, TransportFailure>) {
        attempts[id] = nil
        run.inFlight -= 1
        defer {
            finishIfDone(run)
            wake()
        }
        let now = clock.now()
        if case .failure(let failure) = result, failure.kind == .cancelled {
            // Shutdown. A replay is not resumed after a restart; its journaled outcomes show how far it got.
            return
        }
        let item = run.items[index]
        let resolution = AttemptResolution.resolve(
            Self.facts(of: result), eventSequence: item.eventSequence, eventID: item.eventID, destination: item.destination,
            attempt: delivery.attempts + 1, since: delivery.receivedAt, now: now, policy: policy, replayID: run.id, random: random
        )
        let record = resolution.record
        switch resolution.next {
        case .succeeded:
            run.succeeded += 1
        case .retry(let due):
            run.retries.push(due: due.milliseconds, index: index, attempts: record.attempt, firstAttempt: delivery.receivedAt)
        case .dead:
            run.dead += 1
        }
        Self.log(record, logger: logger)
        observer?.attempted(destination: item.destination, outcome: record.outcome, duration: .milliseconds(record.durationMillis), replay: true)
        journalOutcome(record)
    }

    private func finishIfDone(_ run: ReplayRun) {
        guard run.finishedAt == nil, run.isDone else { return }
        run.finishedAt = clock.now()
        run.items = []  // the progress counts stay; the references go
        logger.info("replay finished", metadata: [
            "replay_id": "\(run.id)", "succeeded": "\(run.succeeded)", "dead": "\(run.dead)", "skipped": "\(run.skipped)",
        ])
    }
}
