import RelayCore
import RelayJournal
import RelayTesting
import Testing

/// The delivery store port's contract, run against every store: deliveries of stored events are
/// handed out once, in due order, up to `max_in_flight`; outcomes move them on (retry at its due
/// time, finished, paused by a 410); the breaker lets one probe through per cool-down; a
/// delivery given back is handed out again; the event store sees every outcome.
@Suite struct DeliveryStoreConformanceTests {
    typealias Events = StoreConformanceTests.Events
    static let t0 = StoreConformanceTests.t0
    static let breaker = CircuitBreaker.Configuration(threshold: 2, cooldownMillis: 1_000, maxCooldownMillis: 8_000)

    func destination(_ name: String, maxInFlight: Int = 16) -> DestinationConfig {
        DestinationConfig(name: name, url: "http://127.0.0.1:9/\(name)", maxInFlight: maxInFlight)
    }

    func at(_ millis: Int64) -> Timestamp { Timestamp(milliseconds: Self.t0.milliseconds + millis) }

    /// Claims at `now` until `count` deliveries were handed out: a store may see what was just
    /// stored a moment later (the journal's tail reads durable records).
    func claim(_ store: StoreUnderTest, now: Timestamp, count: Int) async throws -> [DeliveryClaim] {
        let deliveries = try #require(store.deliveries)
        var claims: [DeliveryClaim] = []
        let enough = try await eventually(timeout: .seconds(30)) {
            claims += await deliveries.claim(now: now).claims
            return claims.count >= count
        }
        try #require(enough, "\(claims.count) of \(count) deliveries handed out")
        return claims
    }

    func resolve(_ claim: DeliveryClaim, status: Int, retryAfter: String? = nil, now: Timestamp, policy: RetryPolicy = RetryPolicy()) -> AttemptResolution {
        AttemptResolution.resolve(
            AttemptResolution.Facts(status: status, error: status == 0 ? "connection refused" : "", retryAfter: retryAfter, durationMillis: 3),
            eventSequence: claim.event.sequence, eventID: claim.eventID, destination: claim.destination, attempt: claim.attempts + 1,
            since: claim.receivedAt, now: now, policy: policy, random: { $0 }
        )
    }

    @Test(arguments: StoreKind.withDeliveries)
    func deliveriesAreHandedOutOnceInOrderUpToMaxInFlight(_ kind: StoreKind) async throws {
        let store = try await kind.make(breaker: Self.breaker)
        let deliveries = try #require(store.deliveries)
        await deliveries.configure(["a": destination("a", maxInFlight: 2), "b": destination("b")])
        let events = Events()
        let stored = (0..<3).map { events.candidate("p\($0)", at: Int64($0), to: ["a", "b"]) }
        _ = try await store.ingest.store(stored)
        let first = try await claim(store, now: at(10), count: 5)
        #expect(first.filter { $0.destination == "a" }.map(\.eventID) == stored.prefix(2).map(\.event.id), "a: the oldest two, max_in_flight 2")
        #expect(Set(first.filter { $0.destination == "b" }.map(\.eventID)) == Set(stored.map(\.event.id)))
        #expect(first.allSatisfy { $0.attempts == 0 })
        #expect(first.first.map { $0.receivedAt == stored[0].event.receivedAt } == true)
        #expect(await deliveries.claim(now: at(10)).claims.isEmpty, "nothing is handed out twice")
        let statuses = await deliveries.statuses()
        #expect(statuses["a"]?.inFlight == 2 && statuses["a"]?.pending == 3)
        // One finishes: its slot frees the third.
        let done = try #require(first.first { $0.destination == "a" })
        await deliveries.complete(done, resolve(done, status: 204, now: at(20)), now: at(20), maxBackoffMillis: 60_000)
        #expect(await deliveries.claim(now: at(20)).claims.map(\.eventID) == [stored[2].event.id])
        let a = try #require(await deliveries.statuses()["a"])
        #expect(a.succeeded == 1 && a.pending == 2 && a.inFlight == 2)
        let content = try await deliveries.event(done.event)
        #expect(content == stored[0].event, "the event a delivery sends, by reference")
        await store.close()
    }

    @Test(arguments: StoreKind.withDeliveries)
    func aRetryWaitsForItsDueTimeAndAReleasedDeliveryComesBackAsItWas(_ kind: StoreKind) async throws {
        let store = try await kind.make(breaker: Self.breaker)
        let deliveries = try #require(store.deliveries)
        await deliveries.configure(["a": destination("a")])
        let events = Events()
        let (one, two) = (events.candidate("r1"), events.candidate("r2"))
        _ = try await store.ingest.store([one, two])
        let claims = try await claim(store, now: at(0), count: 2)
        let first = try #require(claims.first { $0.eventID == one.event.id })
        let second = try #require(claims.first { $0.eventID == two.event.id })
        // Retry-After: 7 puts the retry 7 s out.
        let retry = resolve(first, status: 429, retryAfter: "7", now: at(100))
        #expect(retry.next == .retry(at: at(7_100)))
        await deliveries.complete(first, retry, now: at(100), maxBackoffMillis: 60_000)
        await deliveries.release(second)
        let batch = await deliveries.claim(now: at(200))
        #expect(batch.claims.map(\.eventID) == [two.event.id], "the released one again; the retry not before its time")
        #expect(batch.claims.first?.attempts == 0, "a release is not an attempt")
        #expect(batch.nextDue == at(7_100))
        let again = await deliveries.claim(now: at(7_100)).claims
        #expect(again.map(\.eventID) == [one.event.id])
        #expect(again.first?.attempts == 1)
        // The event store shows the attempt (a journal writes it in the background).
        let recorded = try await eventually(timeout: .seconds(30)) {
            try await store.events.detail(id: one.event.id)?.attempts.map(\.status) == [429]
        }
        #expect(recorded)
        await store.close()
    }

    @Test(arguments: StoreKind.withDeliveries)
    func deadDeliveriesFinishAndA410PausesTheDestinationUntilConfigured(_ kind: StoreKind) async throws {
        let store = try await kind.make(breaker: Self.breaker)
        let deliveries = try #require(store.deliveries)
        let config = ["gone": destination("gone")]
        await deliveries.configure(config)
        let events = Events()
        let stored = (0..<3).map { events.candidate("g\($0)", at: Int64($0), to: ["gone"]) }
        _ = try await store.ingest.store(stored)
        let claims = try await claim(store, now: at(10), count: 3)
        let (first, second, third) = (claims[0], claims[1], claims[2])
        await deliveries.complete(first, resolve(first, status: 400, now: at(20)), now: at(20), maxBackoffMillis: 60_000)
        await deliveries.complete(second, resolve(second, status: 410, now: at(20)), now: at(20), maxBackoffMillis: 60_000)
        await deliveries.release(third)
        var status = try #require(await deliveries.statuses()["gone"])
        #expect(status.dead == 2 && status.pending == 1 && status.paused)
        #expect(await deliveries.claim(now: at(30)).claims.isEmpty, "paused by the 410")
        await deliveries.configure(config)
        #expect(await deliveries.claim(now: at(40)).claims.map(\.eventID) == [third.eventID], "a reload resumes it")
        status = try #require(await deliveries.statuses()["gone"])
        #expect(!status.paused)
        // A destination that is gone from the config keeps its deliveries until it returns.
        await deliveries.configure([:])
        #expect(await deliveries.statuses()["gone"]?.pending == 1)
        await store.close()
    }

    @Test(arguments: StoreKind.withDeliveries)
    func anOperatorsPauseHoldsDeliveriesThroughAReloadUntilResumed(_ kind: StoreKind) async throws {
        let store = try await kind.make(breaker: Self.breaker)
        let deliveries = try #require(store.deliveries)
        let config = ["held": destination("held"), "free": destination("free")]
        await deliveries.configure(config)
        let events = Events()
        let first = events.candidate("h0", at: 0, to: ["held", "free"])
        _ = try await store.ingest.store([first])
        let inFlight = try await claim(store, now: at(10), count: 2)
        try await deliveries.setOperatorPause("held", paused: true)
        var status = try #require(await deliveries.statuses()["held"])
        #expect(status.operatorPaused && !status.paused && status.inFlight == 1)
        #expect(await deliveries.statuses()["free"]?.operatorPaused == false)
        // An attempt in flight when the pause came still finishes (a failure stays pending).
        let held = try #require(inFlight.first { $0.destination == "held" })
        await deliveries.complete(held, resolve(held, status: 503, now: at(20)), now: at(20), maxBackoffMillis: 60_000)
        let second = events.candidate("h1", at: 30, to: ["held", "free"])
        _ = try await store.ingest.store([second])
        // Only the other destination is served: the paused one's deliveries wait, not die.
        let served = try await claim(store, now: at(100_000), count: 1)
        #expect(served.map(\.destination) == ["free"] && served.map(\.eventID) == [second.event.id])
        #expect(await deliveries.claim(now: at(100_000)).claims.isEmpty, "paused")
        await deliveries.configure(config)
        #expect(await deliveries.claim(now: at(100_000)).claims.isEmpty, "a reload does not resume an operator's pause")
        status = try #require(await deliveries.statuses()["held"])
        #expect(status.operatorPaused && status.pending == 2 && status.dead == 0)
        // Changes asked for at once all hold, each saved after the one before.
        async let pauseX: Void = deliveries.setOperatorPause("x", paused: true)
        async let pauseY: Void = deliveries.setOperatorPause("y", paused: true)
        _ = try await (pauseX, pauseY)
        var statuses = await deliveries.statuses()
        #expect(statuses["x"]?.operatorPaused == true && statuses["y"]?.operatorPaused == true && statuses["held"]?.operatorPaused == true)
        async let resumeX: Void = deliveries.setOperatorPause("x", paused: false)
        async let resumeY: Void = deliveries.setOperatorPause("y", paused: false)
        _ = try await (resumeX, resumeY)
        statuses = await deliveries.statuses()
        #expect(statuses["x"]?.operatorPaused == false && statuses["y"]?.operatorPaused == false && statuses["held"]?.operatorPaused == true)
        try await deliveries.setOperatorPause("held", paused: false)
        let resumed = try await claim(store, now: at(100_000), count: 2)
        #expect(Set(resumed.map(\.eventID)) == [first.event.id, second.event.id] && resumed.allSatisfy { $0.destination == "held" })
        #expect(await deliveries.statuses()["held"]?.operatorPaused == false)
        await store.close()
    }

    @Test(arguments: StoreKind.withDeliveries)
    func aRateLimitHandsOutAttemptsAtItsRateWithBurstsUpToMaxInFlight(_ kind: StoreKind) async throws {
        let store = try await kind.make(breaker: Self.breaker)
        let deliveries = try #require(store.deliveries)
        var limited = destination("limited", maxInFlight: 4)
        limited.ratePerSecond = 10  // a token every 100 ms, at most 4 at once
        await deliveries.configure(["limited": limited])
        let events = Events()
        let stored = (0..<12).map { events.candidate("rl\($0)", at: Int64($0), to: ["limited"]) }
        _ = try await store.ingest.store(stored)
        // A full bucket: the burst (4), then nothing until the next token, which the batch names.
        let burst = try await claim(store, now: at(1_000), count: 4)
        #expect(burst.count == 4)
        for claim in burst { await deliveries.complete(claim, resolve(claim, status: 204, now: at(1_000)), now: at(1_000), maxBackoffMillis: 60_000) }
        let empty = await deliveries.claim(now: at(1_000))
        #expect(empty.claims.isEmpty, "the bucket is empty")
        #expect(empty.nextDue == at(1_100), "the next token in 100 ms: \(String(describing: empty.nextDue))")
        // 250 ms later: two whole tokens.
        let two = await deliveries.claim(now: at(1_250)).claims
        #expect(two.count == 2)
        for claim in two { await deliveries.complete(claim, resolve(claim, status: 204, now: at(1_250)), now: at(1_250), maxBackoffMillis: 60_000) }
        // A replay's attempt takes from the same bucket: half a token was left at 1,250 ms, a
        // whole one at 1,300 goes to the replay; the next replay attempt waits for 1,400.
        #expect(await deliveries.takeReplayToken("limited", now: at(1_300)) == nil)
        #expect(await deliveries.takeReplayToken("limited", now: at(1_300)) == at(1_400))
        #expect(await deliveries.claim(now: at(1_360)).claims.isEmpty, "and the live deliveries wait too")
        #expect(await deliveries.takeReplayToken("elsewhere", now: at(1_360)) == nil, "no limit, no wait")
        #expect((await deliveries.statuses()["limited"]?.rateLimited ?? 0) >= 2)
        await store.close()
    }

    @Test(arguments: StoreKind.withDeliveries)
    func anOpenBreakerLetsOneProbeThroughPerCooldown(_ kind: StoreKind) async throws {
        let store = try await kind.make(breaker: Self.breaker)
        let deliveries = try #require(store.deliveries)
        await deliveries.configure(["down": destination("down")])
        let events = Events()
        _ = try await store.ingest.store((0..<5).map { events.candidate("d\($0)", at: Int64($0), to: ["down"]) })
        let claims = try await claim(store, now: at(10), count: 5)
        // Two refusals open the breaker (threshold 2); the rest come back unattempted.
        for claim in claims.prefix(2) {
            await deliveries.complete(claim, resolve(claim, status: 0, now: at(20)), now: at(20), maxBackoffMillis: 60_000)
        }
        for claim in claims.dropFirst(2) { await deliveries.release(claim) }
        #expect(await deliveries.statuses()["down"]?.breakerOpen == true)
        let waiting = await deliveries.claim(now: at(500))
        #expect(waiting.claims.isEmpty && waiting.nextDue == at(1_020), "the first probe one cool-down after the failure that opened it")
        let probe = await deliveries.claim(now: at(1_020)).claims
        #expect(probe.count == 1, "one probe")
        #expect(await deliveries.claim(now: at(1_500)).claims.isEmpty, "nothing beside the probe")
        let failed = try #require(probe.first)
        await deliveries.complete(failed, resolve(failed, status: 503, now: at(1_600)), now: at(1_600), maxBackoffMillis: 60_000)
        #expect(await deliveries.claim(now: at(2_000)).nextDue == at(3_600), "a failed probe doubles the cool-down")
        let next = try #require(await deliveries.claim(now: at(3_600)).claims.first)
        await deliveries.complete(next, resolve(next, status: 204, now: at(3_700)), now: at(3_700), maxBackoffMillis: 60_000)
        #expect(await deliveries.statuses()["down"]?.breakerOpen == false)
        #expect(await deliveries.claim(now: at(3_700)).claims.count == 4, "closed: the four still pending are due and go at once")
        await store.close()
    }

    /// Per-key ordering (`"ordering"`): only a key's oldest unfinished delivery is handed out;
    /// with `on_dead: hold` a dead delivery keeps its key blocked until an operator skips it,
    /// with `continue` the next goes at once; deliveries without a key flow beside them.
    @Test(arguments: StoreKind.withDeliveries)
    func eachKeysDeliveriesGoOutOneAtATimeAndADeadOneHoldsItsKeyUntilSkipped(_ kind: StoreKind) async throws {
        let store = try await kind.make(breaker: Self.breaker)
        let deliveries = try #require(store.deliveries)
        var held = destination("held")
        held.ordering = DeliveryOrdering(key: .orderID, onDead: .hold)
        var flowing = destination("flowing")
        flowing.ordering = DeliveryOrdering(key: .orderID, onDead: .continue)
        await deliveries.configure(["held": held, "flowing": flowing])
        let events = Events()
        // k1: 0, 2, 4; k2: 1; no key: 3.
        let stored = (0..<5).map { index in
            var candidate = events.candidate("k\(index)", at: Int64(index), to: ["held", "flowing"])
            let key: String? = index == 3 ? nil : index == 1 ? "k2" : "k1"
            candidate.decision.orderingKeys = key.map { ["held": $0, "flowing": $0] } ?? [:]
            return candidate
        }
        _ = try await store.ingest.store(stored)
        let ids = stored.map(\.event.id)
        let first = try await claim(store, now: at(10), count: 6)
        for name in ["held", "flowing"] {
            #expect(Set(first.filter { $0.destination == name }.map(\.eventID)) == [ids[0], ids[1], ids[3]], "\(name): each key's oldest and the unkeyed one")
        }
        #expect(await deliveries.claim(now: at(10)).claims.isEmpty, "k1's later deliveries wait")
        for claim in first {
            // k1's first dies (400) at both; k2's is retried; the unkeyed one succeeds.
            let status = claim.eventID == ids[0] ? 400 : claim.eventID == ids[1] ? 503 : 204
            await deliveries.complete(claim, resolve(claim, status: status, now: at(20)), now: at(20), maxBackoffMillis: 60_000)
        }
        let afterDeath = try await claim(store, now: at(20), count: 1)
        #expect(afterDeath.map(\.destination) == ["flowing"] && afterDeath.map(\.eventID) == [ids[2]], "continue: k1 moves on; hold: it waits")
        var status = try #require(await deliveries.statuses()["held"])
        #expect(status.keysBlocked == 1)
        #expect(status.heldKeys.map(\.key) == ["k1"] && status.heldKeys.first?.eventID == ids[0] && status.heldKeys.first?.waiting == 2)
        #expect(await deliveries.statuses()["flowing"]?.keysBlocked == 0)
        // k2's retry comes back in its time at both; k1 stays held at "held".
        let retries = await deliveries.claim(now: at(60_000)).claims
        #expect(Set(retries.map(\.destination)) == ["held", "flowing"] && retries.allSatisfy { $0.eventID == ids[1] }, "\(retries.map(\.eventID))")
        for claim in retries + afterDeath {
            await deliveries.complete(claim, resolve(claim, status: 204, now: at(60_010)), now: at(60_010), maxBackoffMillis: 60_000)
        }
        let flowingLast = await deliveries.claim(now: at(60_010)).claims
        #expect(flowingLast.map(\.destination) == ["flowing"] && flowingLast.map(\.eventID) == [ids[4]])
        // The operator skips the dead one: k1 moves on at "held", one at a time.
        let reference = try #require(first.first { $0.eventID == ids[0] }?.event)
        #expect(try await deliveries.releaseHeldKey("held", event: reference, eventID: ids[0], now: at(60_020)))
        #expect(try await !deliveries.releaseHeldKey("held", event: reference, eventID: ids[0], now: at(60_020)), "released once")
        status = try #require(await deliveries.statuses()["held"])
        #expect(status.keysBlocked == 0 && status.heldKeys.isEmpty && status.dead == 1, "skipped, it stays dead")
        let next = try await claim(store, now: at(60_030), count: 1)
        #expect(next.map(\.eventID) == [ids[2]])
        #expect(await deliveries.claim(now: at(60_030)).claims.isEmpty, "4 waits for 2")
        await store.close()
    }
}
