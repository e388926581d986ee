import RelayCore
import Testing

/// The breaker and the attempt resolution are values: every case runs on made-up times, with no
/// clock, no sleep and no HTTP.
@Suite struct CircuitBreakerTests {
    let t0 = Timestamp(milliseconds: 1_000_000)

    func at(_ millis: Int64) -> Timestamp { Timestamp(milliseconds: t0.milliseconds + millis) }

    @Test func opensAfterTheThresholdAndThenAllowsOneProbeAtATime() {
        var breaker = CircuitBreaker(configuration: .init(threshold: 3))
        for n in 1...2 {
            breaker.started()
            breaker.record(.failure, now: at(Int64(n)), maxBackoffMillis: 3_600_000)
            #expect(!breaker.isOpen)
            #expect(breaker.admission(now: at(Int64(n)), maxInFlight: 8) == .allow(maxInFlight: 8))
        }
        breaker.started()
        breaker.record(.failure, now: at(10), maxBackoffMillis: 3_600_000)
        #expect(breaker.isOpen)
        // Nothing before the 1 s cool-down, then one request in flight at a time.
        #expect(breaker.admission(now: at(10), maxInFlight: 8) == .wait(until: at(1_010)))
        #expect(breaker.admission(now: at(1_009), maxInFlight: 8) == .wait(until: at(1_010)))
        #expect(breaker.admission(now: at(1_010), maxInFlight: 8) == .allow(maxInFlight: 1))
    }

    @Test func coolDownDoublesPerFailedProbeUpToTheSmallerCap() {
        func cooldowns(maxBackoffMillis: Int64, probes: Int) -> [Int64] {
            var breaker = CircuitBreaker(configuration: .init(threshold: 1, cooldownMillis: 1_000, maxCooldownMillis: 60_000))
            var now = t0
            breaker.started()
            breaker.record(.failure, now: now, maxBackoffMillis: maxBackoffMillis)
            var waits: [Int64] = []
            for _ in 0..<probes {
                guard case .wait(let until) = breaker.admission(now: now, maxInFlight: 4) else {
                    Issue.record("an open breaker allowed a request during its cool-down")
                    return waits
                }
                waits.append(until.milliseconds - now.milliseconds)
                now = until
                #expect(breaker.admission(now: now, maxInFlight: 4) == .allow(maxInFlight: 1))
                breaker.started()
                breaker.record(.failure, now: now, maxBackoffMillis: maxBackoffMillis)
            }
            return waits
        }
        // 1 s after the failure that opened it, doubling per failed probe, capped at 60 s.
        #expect(cooldowns(maxBackoffMillis: 3_600_000, probes: 9) == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000])
        // A destination whose max_backoff_ms is shorter caps it there…
        #expect(cooldowns(maxBackoffMillis: 5_000, probes: 5) == [1_000, 2_000, 4_000, 5_000, 5_000])
        // …but never below the first cool-down.
        #expect(cooldowns(maxBackoffMillis: 100, probes: 3) == [1_000, 1_000, 1_000])
        // Very many failed probes do not overflow the shift.
        #expect(cooldowns(maxBackoffMillis: 3_600_000, probes: 80).allSatisfy { $0 <= 60_000 && $0 >= 1_000 })
    }

    @Test func aHealthyAnswerClosesItAndResetsTheCoolDown() {
        var breaker = CircuitBreaker(configuration: .init(threshold: 2))
        for n in 0..<4 {
            breaker.started()
            breaker.record(.failure, now: at(Int64(n) * 10_000), maxBackoffMillis: 3_600_000)
        }
        #expect(breaker.isOpen && breaker.probes == 2)
        breaker.started()
        breaker.record(.healthy, now: at(50_000), maxBackoffMillis: 3_600_000)
        #expect(!breaker.isOpen && breaker.probes == 0 && breaker.probeNotBefore == nil && breaker.consecutiveFailures == 0)
        #expect(breaker.admission(now: at(50_000), maxInFlight: 4) == .allow(maxInFlight: 4))
        // Reopening starts over at the first cool-down.
        for n in 0..<2 {
            breaker.started()
            breaker.record(.failure, now: at(60_000 + Int64(n)), maxBackoffMillis: 3_600_000)
        }
        #expect(breaker.admission(now: at(60_001), maxInFlight: 4) == .wait(until: at(61_001)))
    }

    @Test func restoredFailuresReopenTheBreaker() {
        let breaker = CircuitBreaker(configuration: .init(threshold: 5), consecutiveFailures: 7)
        #expect(breaker.isOpen)
        // No cool-down is known after a restart: one probe may go at once.
        #expect(breaker.admission(now: t0, maxInFlight: 10) == .allow(maxInFlight: 1))
    }
}

@Suite struct AttemptResolutionTests {
    let policy = RetryPolicy(maxAttempts: 3, initialBackoffMillis: 1_000, maxBackoffMillis: 10_000, maxAgeMillis: 60_000)
    let received = Timestamp(milliseconds: 5_000_000)

    func resolve(_ facts: AttemptResolution.Facts, attempt: Int = 1, now offset: Int64 = 0, replayID: String = "") -> AttemptResolution {
        AttemptResolution.resolve(
            facts, eventSequence: 9, eventID: "evt_1", destination: "d", attempt: attempt, since: received,
            now: Timestamp(milliseconds: received.milliseconds + offset), policy: policy, replayID: replayID, random: { $0 }
        )
    }

    @Test func successRetryAndDeath() {
        let ok = resolve(.init(status: 204, durationMillis: 7))
        #expect(ok.next == .succeeded && ok.breaker == .healthy)
        #expect(ok.record.outcome == .succeeded && ok.record.status == 204 && ok.record.durationMillis == 7 && ok.record.nextDue == nil)

        // A 503 on attempt 2: backoff 2 s (random returns the ceiling), the breaker counts it.
        let retry = resolve(.init(status: 503, durationMillis: 3), attempt: 2, now: 100)
        #expect(retry.next == .retry(at: Timestamp(milliseconds: received.milliseconds + 2_100)))
        #expect(retry.record.outcome == .retry && retry.record.nextDue == Timestamp(milliseconds: received.milliseconds + 2_100))
        #expect(retry.breaker == .failure)

        // Retry-After replaces the drawn delay, clamped to max_backoff_ms.
        let limited = resolve(.init(status: 429, retryAfter: "3600", durationMillis: 1))
        #expect(limited.next == .retry(at: Timestamp(milliseconds: received.milliseconds + 10_000)))

        // The last attempt: dead, and the reason says why; a 5xx still counts against the breaker.
        let exhausted = resolve(.init(status: 500, durationMillis: 1), attempt: 3)
        #expect(exhausted.next == .dead(pausesDestination: false) && exhausted.breaker == .failure)
        #expect(exhausted.record.outcome == .dead && exhausted.record.error.contains("max_attempts"))

        // Past max_age (counted from `since`): dead, with the transport error kept.
        let old = resolve(.init(status: 0, error: "connect failed", durationMillis: 1), attempt: 1, now: 59_500)
        #expect(old.next == .dead(pausesDestination: false))
        #expect(old.record.error.contains("max_age") && old.record.error.contains("connect failed"))
    }

    @Test func permanentRefusalsAreDeadAtOnceAndDoNotOpenTheBreaker() {
        let refused = resolve(.init(status: 400, durationMillis: 1))
        #expect(refused.next == .dead(pausesDestination: false) && refused.breaker == .healthy && !refused.record.pausedDestination)
        let gone = resolve(.init(status: 410, durationMillis: 1))
        #expect(gone.next == .dead(pausesDestination: true) && gone.record.pausedDestination && gone.breaker == .healthy)
        // A replay's 410 is recorded with its replay id and never pauses the destination's lane.
        let replayed = resolve(.init(status: 410, durationMillis: 1), replayID: "rpl_1")
        #expect(replayed.next == .dead(pausesDestination: false) && !replayed.record.pausedDestination && replayed.record.replayID == "rpl_1")
    }
}
