/// One destination's deliveries as a store keeps them: the pending queue, what is in flight,
/// the circuit breaker, the 410 pause and the running totals. Pure: a store decides where it
/// lives (the journal in memory, rebuilt from its records; another store in its rows) and the
/// same rules then hold for every store.
public struct LaneState: Sendable {
    public var destination: DestinationConfig? {
        didSet { if let destination { bucket = TokenBucket.make(for: destination, tokens: bucket?.tokens, updatedAt: bucket?.updatedAt) } }
    }
    /// The destination's rate limit (`rate_per_s`), shared by live deliveries and replays.
    public var bucket: TokenBucket?
    /// Deliveries that were due but held back by the rate limit, ever.
    public var rateLimited = 0
    public var queue = DeliveryQueue()
    public var inFlight = 0
    public var breaker: CircuitBreaker
    /// Paused by a 410 until the config is reloaded.
    public var paused = false
    /// Paused by an operator until resumed (a reload does not resume it; the store saves it).
    public var operatorPaused = false
    public var succeeded = 0
    public var dead = 0

    public init(breaker: CircuitBreaker) {
        self.breaker = breaker
    }

    /// Takes every delivery that may start at `now`: none while paused (by a 410 or by an
    /// operator) or unconfigured, one
    /// probe per cool-down while the breaker is open (a dead destination that refuses at once is
    /// not tried in a tight loop), else due ones up to `max_in_flight`. Also returns when more
    /// may start (nil: when something changes).
    public mutating func claim(now: Timestamp) -> (deliveries: [PendingDelivery], nextDue: Timestamp?) {
        guard let destination, !paused, !operatorPaused else { return ([], nil) }
        let limit: Int
        switch breaker.admission(now: now, maxInFlight: destination.maxInFlight) {
        case .wait(let notBefore):
            // With an attempt in flight its answer decides; the cool-down starts after it.
            return ([], inFlight == 0 ? notBefore : nil)
        case .allow(let maxInFlight):
            limit = maxInFlight
        }
        var taken: [PendingDelivery] = []
        // The rate limit allows as many starts as the bucket holds whole tokens.
        var allowed = bucket?.wholeTokens(now: now) ?? Int.max
        while inFlight < limit, allowed > 0, let delivery = queue.takeDue(now: now) {
            inFlight += 1
            allowed -= 1
            breaker.started()
            taken.append(delivery)
        }
        _ = bucket?.take(taken.count, now: now)
        var next: Timestamp?
        if inFlight < limit, let due = queue.nextDue() {
            if due > now {
                next = due
            } else if let bucket {
                // Due, but the bucket is empty: when its next token comes.
                rateLimited += 1
                next = bucket.nextToken(now: now)
            }
        }
        return (taken, next)
    }

    /// Applies an attempt's resolution to the delivery of event `sequence` taken by `claim`.
    public mutating func complete(_ sequence: UInt64, _ resolution: AttemptResolution, now: Timestamp, maxBackoffMillis: Int64) {
        inFlight -= 1
        switch resolution.next {
        case .succeeded:
            queue.remove(sequence)
            succeeded += 1
        case .retry(let due):
            queue.reschedule(sequence, attempts: resolution.record.attempt, due: due)
        case .dead(let pausesDestination):
            removeDead(sequence, at: now)
            dead += 1
            if pausesDestination { paused = true }
        }
        breaker.record(resolution.breaker, now: now, maxBackoffMillis: maxBackoffMillis)
        queue.release(sequence)
    }

    /// Gives back a delivery taken by `claim` without an attempt (shutdown cut it): it is tried
    /// again, as if never taken.
    public mutating func release(_ sequence: UInt64) {
        inFlight -= 1
        queue.release(sequence)
    }

    /// Applies an outcome read back from the store (after a restart). Applying one twice, or one
    /// a checkpoint already reflects, changes nothing. Returns false when the delivery is not in
    /// the queue.
    @discardableResult
    public mutating func applyRecovered(_ outcome: DeliveryRecord) -> Bool {
        let sequence = outcome.eventSequence
        guard let current = queue.pending[sequence] else { return false }
        switch outcome.outcome {
        case .succeeded:
            queue.remove(sequence)
            succeeded += 1
        case .dead:
            removeDead(sequence, at: outcome.time)
            dead += 1
            if outcome.pausedDestination { paused = true }
        case .retry:
            guard outcome.attempt > current.attempts else { return true }
            queue.reschedule(sequence, attempts: outcome.attempt, due: outcome.nextDue ?? outcome.time)
        }
        return true
    }

    /// A dead delivery leaves the queue; with `on_dead: hold` its key stays blocked behind it.
    private mutating func removeDead(_ sequence: UInt64, at time: Timestamp) {
        if destination?.ordering?.onDead == .hold {
            queue.hold(sequence, since: time)
        } else {
            queue.remove(sequence)
        }
    }

    /// A replay's attempt to this destination takes a token: nil when it may start now, else
    /// when to ask again.
    public mutating func takeReplayToken(now: Timestamp) -> Timestamp? {
        guard var current = bucket else { return nil }
        defer { bucket = current }
        if current.take(1, now: now) == 1 { return nil }
        rateLimited += 1
        return current.nextToken(now: now)
    }

    public func status(overflowing: Bool) -> DestinationStatus {
        var status = DestinationStatus(
            pending: queue.count, inFlight: inFlight, succeeded: succeeded, dead: dead, paused: paused,
            breakerOpen: breaker.isOpen, overflowing: overflowing, operatorPaused: operatorPaused
        )
        status.rateLimited = rateLimited
        status.heldKeys = Array(queue.heldKeys.prefix(DestinationStatus.heldKeysListed))
        status.keysBlocked = queue.held.count
        return status
    }
}
