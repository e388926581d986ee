import Foundation
import RelayCore
import RelayJournal
import RelayServer
import RelayTesting
import Synchronization
import Testing

// The README's "Replay" promises that ReplayTests does not check yet: retries by the
// destination's policy within the replay, its journal records, what a replay does to the
// event's own delivery state, `relay replay --wait`'s exit status, destinations_mode, the rate,
// the events a replay covers, and the replay gauges.

private func json(_ text: String) -> [UInt8] { Array(text.utf8) }

private func replayID(_ answer: (status: Int, json: JSONValue?)) -> String? { answer.json?["replay_id"]?.stringValue }

/// The relay id of the one event a POST stored.
private func eventID(_ response: TestHTTPClient.Response) throws -> String {
    try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
}

/// `GET /admin/events/{id}`: each routed destination's delivery state.
private func deliveryStates(_ relay: LiveRelay, _ id: String) async throws -> [String: String] {
    let deliveries = try await relay.admin("/admin/events/\(id)").json?["deliveries"]?.arrayValue ?? []
    var states: [String: String] = [:]
    for delivery in deliveries {
        if let name = delivery["destination"]?.stringValue { states[name] = delivery["state"]?.stringValue }
    }
    return states
}

/// Waits (bounded) until the event's delivery states are `expected`; returns the last seen.
private func waitForStates(_ relay: LiveRelay, _ id: String, _ expected: [String: String]) async throws -> [String: String] {
    var states: [String: String] = [:]
    for _ in 0..<1500 {
        states = try await deliveryStates(relay, id)
        if states == expected { break }
        try await Task.sleep(for: .milliseconds(20))
    }
    return states
}

/// Requests the replay lane sent (marked `x-relay-replay: 1`).
private func replayed(_ requests: [TestDownstream.Received]) -> [TestDownstream.Received] {
    requests.filter { $0.header("x-relay-replay") == "1" }
}

@Suite struct ReplayPromisesTests {
    // MARK: - Retries within a replay

    /// An event whose delivery died an hour ago (max_age is one minute) is replayed to the
    /// destination, which still fails: the replay retries it by the destination's max_attempts
    /// and backoff, numbering its attempts 1, 2, 3 whatever the live attempts were, journals
    /// every attempt with the replay id, and leaves the event's dead delivery dead.
    /// `relay replay --wait` then exits 1, as the delivery dies again.
    @Test(.timeLimit(.minutes(1)))
    func anOldDeadDeliveryIsReplayedAndRetriedByTheDestinationsPolicy() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let clock = OffsetClock()
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type" } } },
          "destinations": { "down": { "url": "http://127.0.0.1:\(port)/status/503",
                                      "retry": { "max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 20, "max_age": "1m" } } },
          "routes": [ { "name": "all", "to": ["down"] } ] }
        """
        let relay = try await LiveRelay(routes: routes, clock: clock)
        defer { Task { await relay.stop(); await downstream.stop() } }
        let id = try eventID(try await relay.post("shop", body: json(#"{"id":"old-1","type":"order.x"}"#)))
        #expect(try await waitForStates(relay, id, ["down": "dead"]) == ["down": "dead"], "the live delivery dies after 3 attempts")
        let live = downstream.requests
        #expect(live.map { $0.header("x-relay-attempt") } == ["1", "2", "3"])
        #expect(replayed(live).isEmpty)

        // An hour later: the event is 60 times older than max_age.
        clock.advance(milliseconds: 3_600_000)
        let answer = try await relay.admin("/admin/replay", method: "POST", body: json("{\"filter\":{\"id\":\"\(id)\"}}"))
        #expect(answer.status == 202)
        #expect(answer.json?["deliveries"]?["down"]?.doubleValue == 1)
        let replay = try #require(replayID(answer))
        let progress = try #require(try await finished(relay, replay))
        #expect(progress["dead"]?.doubleValue == 1)
        #expect(progress["succeeded"]?.doubleValue == 0)
        #expect(progress["attempts"]?.doubleValue == 3, "max_attempts, counted within the replay")

        // The requests: attempts numbered within the replay, not 4, 5, 6 after the live ones.
        let sent = replayed(downstream.requests)
        #expect(sent.map { $0.header("x-relay-attempt") } == ["1", "2", "3"])
        #expect(sent.allSatisfy { $0.header("webhook-id") == id })

        // The journal: every replay attempt, with the replay id; the live ones without.
        let records = try await relay.storedDeliveries(atLeast: 6)
        let event = try #require(try relay.storedEvents().first)
        #expect(records.filter { $0.replayID.isEmpty }.map(\.attempt) == [1, 2, 3])
        let ofReplay = records.filter { !$0.replayID.isEmpty }
        #expect(ofReplay.allSatisfy { $0.replayID == replay && $0.eventID == id && $0.destination == "down" })
        #expect(ofReplay.map(\.attempt) == [1, 2, 3])
        #expect(ofReplay.map(\.outcome) == [.retry, .retry, .dead])
        #expect(ofReplay.last?.error.contains("max_attempts") == true, "\(String(describing: ofReplay.last?.error))")
        // Retried although the event was far past max_age: the age counts from the replay.
        #expect((ofReplay.first?.time.milliseconds ?? 0) - event.receivedAt.milliseconds > 60_000)
        // The backoff is the destination's: at most 10 ms after attempt 1 and 20 ms after attempt 2.
        for record in ofReplay where record.outcome == .retry {
            let wait = (record.nextDue?.milliseconds ?? Int64.max) - record.time.milliseconds
            #expect(wait >= 0 && wait <= 10 << (record.attempt - 1), "attempt \(record.attempt) waits \(wait) ms")
        }

        // The event's own delivery is still dead, and still found as dead.
        let detail = try #require(try await relay.admin("/admin/events/\(id)").json)
        #expect(detail["delivery_state"]?.stringValue == "dead")
        #expect(try await deliveryStates(relay, id) == ["down": "dead"])
        #expect(detail["attempts"]?.arrayValue?.count == 6, "every attempt, replays included")
        let dead = try await relay.admin("/admin/events?delivery_state=dead").json?["events"]?.arrayValue ?? []
        #expect(dead.compactMap { $0["id"]?.stringValue } == [id])

        // The CLI follows the replay to its end and exits 1: the delivery died.
        let wait = try await runRelay(["replay", "--id", id, "--wait", "--admin", "http://127.0.0.1:\(relay.adminPort)"])
        #expect(wait.status == 1, "out: \(wait.out) err: \(wait.err)")
        #expect(wait.out.contains("finished: 0 succeeded, 1 dead"), "\(wait.out)")
        #expect(replayed(downstream.requests).count == 6)
        await relay.stop()
        await downstream.stop()
    }

    /// max_age limits a replayed delivery too, counted from the replay's start: an event an hour
    /// old, replayed to a destination with max_age 2 s that keeps failing, is retried (not dead
    /// at once) for about two seconds and then dies for max_age, not max_attempts.
    @Test(.timeLimit(.minutes(1)))
    func maxAgeCountsFromTheReplaysStartNotTheEventsReceipt() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let clock = OffsetClock()
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } },
          "destinations": { "up": { "url": "http://127.0.0.1:\(port)/up" },
                            "ageing": { "url": "http://127.0.0.1:\(port)/status/503/ageing",
                                        "retry": { "max_attempts": 1000, "initial_backoff_ms": 50, "max_backoff_ms": 200, "max_age": "2s" } } },
          "routes": [ { "name": "all", "to": ["up"] } ] }
        """
        let relay = try await LiveRelay(routes: routes, clock: clock)
        defer { Task { await relay.stop(); await downstream.stop() } }
        let id = try eventID(try await relay.post("shop", body: json(#"{"id":"aged"}"#)))
        #expect(try await waitForStates(relay, id, ["up": "succeeded"]) == ["up": "succeeded"])
        clock.advance(milliseconds: 3_600_000)

        let answer = try await relay.admin("/admin/replay", method: "POST", body: json("{\"filter\":{\"id\":\"\(id)\"},\"destinations\":[\"ageing\"]}"))
        #expect(answer.status == 202)
        let replay = try #require(replayID(answer))
        let progress = try #require(try await finished(relay, replay))
        #expect(progress["dead"]?.doubleValue == 1)
        let attempts = Int(progress["attempts"]?.doubleValue ?? 0)
        #expect(attempts >= 2, "retried although the event is an hour old")

        let records = try await relay.storedDeliveries(atLeast: 1 + attempts).filter { $0.replayID == replay }
        #expect(records.count == attempts)
        #expect(records.map(\.attempt) == Array(1...max(1, attempts)))
        #expect(records.dropLast().allSatisfy { $0.outcome == .retry })
        let last = try #require(records.last)
        #expect(last.outcome == .dead)
        #expect(last.error.contains("max_age"), "\(last.error)")
        let first = try #require(records.first)
        // No retry is scheduled past 2 s from the replay's first attempt (which precedes the
        // first record), and with at most 200 ms of backoff it cannot die for max_age before
        // 1.8 s from it: the delivery lived about max_age.
        #expect(records.dropLast().allSatisfy { ($0.nextDue?.milliseconds ?? .max) <= first.time.milliseconds + 2000 })
        #expect(last.time.milliseconds - first.time.milliseconds >= 1000, "lived \(last.time.milliseconds - first.time.milliseconds) ms")
        let sent = downstream.requests(at: "/status/503/ageing")
        #expect(sent.map { $0.header("x-relay-attempt") } == (1...max(1, attempts)).map { String($0) })
        await relay.stop()
        await downstream.stop()
    }

    // MARK: - The event's own delivery state

    /// What a replay does to an event's delivery state, exactly as implemented
    /// (`JournalEventStore.note`): a replay that succeeds makes the delivery succeeded (so
    /// replaying `dead` again finds only what is still dead); a replay that fails or dies leaves
    /// the delivery as it was — a dead one stays dead, a succeeded one stays succeeded.
    @Test(.timeLimit(.minutes(1)))
    func aReplayChangesADeliverysStateOnlyBySucceeding() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let base = "http://127.0.0.1:\(port)"
        func routes(a: String) -> String {
            """
            { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } },
              "destinations": { "a": { "url": "\(a)", "retry": { "max_attempts": 1 } },
                                "d": { "url": "\(base)/flaky/1", "retry": { "max_attempts": 1 } },
                                "z": { "url": "\(base)/status/503", "retry": { "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20 } } },
              "routes": [ { "name": "all", "to": ["a", "d", "z"] } ] }
            """
        }
        let relay = try await LiveRelay(routes: routes(a: base + "/a"))
        defer { Task { await relay.stop(); await downstream.stop() } }
        let id = try eventID(try await relay.post("shop", body: json(#"{"id":"s1"}"#)))
        // a succeeds; d fails once (its only attempt) and dies; z dies after two attempts.
        let live = ["a": "succeeded", "d": "dead", "z": "dead"]
        #expect(try await waitForStates(relay, id, live) == live)

        // Replaying the dead ones: d now succeeds, z dies again.
        let first = try await relay.admin("/admin/replay", method: "POST", body: json("{\"filter\":{\"id\":\"\(id)\",\"delivery_state\":\"dead\"}}"))
        #expect(first.status == 202)
        #expect(first.json?["deliveries"]?["d"]?.doubleValue == 1)
        #expect(first.json?["deliveries"]?["z"]?.doubleValue == 1)
        #expect(first.json?["deliveries"]?["a"] == nil, "not the succeeded sibling")
        let firstProgress = try await finished(relay, try #require(replayID(first)))
        #expect(firstProgress?["succeeded"]?.doubleValue == 1)
        #expect(firstProgress?["dead"]?.doubleValue == 1)
        let afterFirst = ["a": "succeeded", "d": "succeeded", "z": "dead"]
        #expect(try await waitForStates(relay, id, afterFirst) == afterFirst, "d's replay succeeded: d is succeeded; z's died: z stays dead")
        let again = try await relay.admin("/admin/replay", method: "POST", body: json("{\"filter\":{\"id\":\"\(id)\",\"delivery_state\":\"dead\"},\"dry_run\":true}"))
        #expect(again.json?["deliveries"]?.objectValue?.map(\.key) == ["z"], "replaying dead again finds only what is still dead: \(String(describing: again.json))")

        // a's destination now refuses: a replay of a dies, and a stays succeeded.
        try routes(a: base + "/status/500/a").write(toFile: relay.configPath, atomically: true, encoding: .utf8)
        #expect(try await relay.admin("/admin/routes/reload", method: "POST").status == 200)
        let second = try await relay.admin("/admin/replay", method: "POST", body: json("{\"filter\":{\"id\":\"\(id)\"},\"destinations\":[\"a\"]}"))
        let secondID = try #require(replayID(second))
        #expect(try await finished(relay, secondID)?["dead"]?.doubleValue == 1)
        let records = try await relay.storedDeliveries(atLeast: 8)
        #expect(records.filter { $0.replayID == secondID }.map(\.outcome) == [.dead], "the dead replay attempt is journaled")
        #expect(try await deliveryStates(relay, id) == afterFirst, "a dead replay does not make a succeeded delivery dead")
        let detail = try await relay.admin("/admin/events/\(id)").json
        #expect(detail?["attempts"]?.arrayValue?.count == 8, "live a, d, z, z; replay d, z, z; replay a")
        #expect(replayed(downstream.requests(at: "/a")).isEmpty)
        #expect(replayed(downstream.requests(at: "/status/500/a")).count == 1)
        await relay.stop()
        await downstream.stop()
    }

    // MARK: - Options

    /// `destinations_mode: "only"` (the default, and the CLI without `--also`) sends to the given
    /// destinations instead of the routed ones; `"add"` (`--also`) to the routed ones and these.
    /// `relay replay --wait` exits 0 when nothing died.
    @Test(.timeLimit(.minutes(1)))
    func destinationsOnlyReplaceAndAddExtendTheRoutedOnes() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let base = "http://127.0.0.1:\(port)"
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } },
          "destinations": { "a": { "url": "\(base)/a" }, "b": { "url": "\(base)/b" }, "c": { "url": "\(base)/c" } },
          "routes": [ { "name": "all", "to": ["a"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop(); await downstream.stop() } }
        let id = try eventID(try await relay.post("shop", body: json(#"{"id":"m1"}"#)))
        #expect(await downstream.wait { $0.count == 1 })
        func counts() -> [String: Int] {
            var result: [String: Int] = [:]
            for request in replayed(downstream.requests) { result[request.path, default: 0] += 1 }
            return result
        }

        let only = try await relay.admin("/admin/replay", method: "POST", body: json("{\"filter\":{\"id\":\"\(id)\"},\"destinations\":[\"b\"]}"))
        #expect(only.json?["deliveries"]?.objectValue?.map(\.key) == ["b"])
        #expect(try await finished(relay, try #require(replayID(only)))?["succeeded"]?.doubleValue == 1)
        #expect(counts() == ["/b": 1], "only the given destination")

        let add = try await relay.admin("/admin/replay", method: "POST", body: json(
            "{\"filter\":{\"id\":\"\(id)\"},\"destinations\":[\"b\"],\"destinations_mode\":\"add\"}"
        ))
        #expect(add.json?["deliveries"]?.objectValue?.map(\.key).sorted() == ["a", "b"])
        #expect(try await finished(relay, try #require(replayID(add)))?["succeeded"]?.doubleValue == 2)
        #expect(counts() == ["/a": 1, "/b": 2], "the routed destination and the given one")

        let admin = "http://127.0.0.1:\(relay.adminPort)"
        let also = try await runRelay(["replay", "--id", id, "--destination", "c", "--also", "--wait", "--admin", admin])
        #expect(also.status == 0, "\(also.out) \(also.err)")
        #expect(also.out.contains("2 deliveries scheduled") && also.out.contains("finished: 2 succeeded, 0 dead"), "\(also.out)")
        #expect(counts() == ["/a": 2, "/b": 2, "/c": 1])

        let instead = try await runRelay(["replay", "--id", id, "--destination", "c", "--wait", "--admin", admin])
        #expect(instead.status == 0, "\(instead.out) \(instead.err)")
        #expect(instead.out.contains("1 delivery scheduled (c 1)"), "\(instead.out)")
        #expect(counts() == ["/a": 2, "/b": 2, "/c": 2])
        #expect(downstream.requests.allSatisfy { $0.header("webhook-id") == id })
        await relay.stop()
        await downstream.stop()
    }

    /// `rate_per_s` throttles the replay's starts even with room for 8 at once: 20 deliveries at
    /// 10 per second start over at least 1.9 s (a lower bound: a slow machine only adds to it).
    @Test(.timeLimit(.minutes(1)))
    func ratePerSecondSpacesTheReplaysStarts() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } },
          "destinations": { "sink": { "url": "http://127.0.0.1:\(port)/sink" } },
          "routes": [ { "name": "all", "to": ["sink"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop(); await downstream.stop() } }
        for i in 0..<20 { _ = try await relay.post("shop", body: json("{\"id\":\"r\(i)\"}")) }
        #expect(await downstream.wait { $0.count == 20 })

        let asked = ContinuousClock.now
        let answer = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"source":"shop"},"rate_per_s":10,"concurrency":8}"#))
        #expect(answer.json?["total_deliveries"]?.doubleValue == 20)
        let progress = try await finished(relay, try #require(replayID(answer)))
        let took = ContinuousClock.now - asked
        #expect(progress?["succeeded"]?.doubleValue == 20)
        #expect(replayed(downstream.requests).count == 20)
        // The 20th start is at least 19 intervals of 100 ms after the first.
        #expect(took >= .milliseconds(1850), "20 deliveries at 10/s took \(took)")
        await relay.stop()
        await downstream.stop()
    }

    /// A replay covers the events stored when it was asked for: events that arrive while it
    /// runs, matching its filter too, are not sent by it.
    @Test(.timeLimit(.minutes(1)))
    func eventsStoredAfterTheReplayWasAskedForAreNotPartOfIt() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let base = "http://127.0.0.1:\(port)"
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type" } } },
          "destinations": { "fast": { "url": "\(base)/fast" }, "slow": { "url": "\(base)/slow/1000" } },
          "routes": [ { "name": "all", "to": ["fast"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop(); await downstream.stop() } }
        var before: [String] = []
        for i in 0..<4 { before.append(try eventID(try await relay.post("shop", body: json("{\"id\":\"b\(i)\",\"type\":\"order.x\"}")))) }
        #expect(await downstream.wait { $0.count == 4 })

        // One at a time to a destination answering in 1 s: the replay runs for 4 s, time enough
        // for four posts and a look at its state even on a loaded machine (400 ms was not once).
        let answer = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"type":"order.*"},"destinations":["slow"],"concurrency":1}"#))
        #expect(answer.json?["matched_events"]?.doubleValue == 4)
        let id = try #require(replayID(answer))
        #expect(await downstream.wait { replayed($0).count >= 1 }, "the replay has begun")
        var after: [String] = []
        for i in 0..<4 { after.append(try eventID(try await relay.post("shop", body: json("{\"id\":\"a\(i)\",\"type\":\"order.x\"}")))) }
        #expect(try await relay.admin("/admin/replays/\(id)").json?["state"]?.stringValue == "running", "the later events arrived while it ran")

        let progress = try await finished(relay, id)
        #expect(progress?["matched_events"]?.doubleValue == 4)
        #expect(progress?["deliveries"]?.doubleValue == 4)
        #expect(progress?["succeeded"]?.doubleValue == 4)
        #expect(progress?["attempts"]?.doubleValue == 4)
        let sent = replayed(downstream.requests)
        #expect(sent.allSatisfy { $0.path == "/slow/1000" })
        #expect(sent.compactMap { $0.header("webhook-id") }.sorted() == before.sorted(), "only the events stored before it was asked for")
        // The later events match the same filter (a replay asked for now would take all eight)
        // and were delivered live.
        let now = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"type":"order.*"},"dry_run":true}"#))
        #expect(now.json?["matched_events"]?.doubleValue == 8)
        #expect(await downstream.wait { $0.filter { $0.path == "/fast" }.count == 8 })
        #expect(Set(after).isDisjoint(with: Set(sent.compactMap { $0.header("webhook-id") })))
        await relay.stop()
        await downstream.stop()
    }

    // MARK: - Metrics

    /// `relay_replays_running` is 1 while a replay runs, with `relay_replay_deliveries_remaining`
    /// above 0, and both are back to 0 when it has finished.
    @Test(.timeLimit(.minutes(1)))
    func replayGaugesFollowARunningReplay() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let base = "http://127.0.0.1:\(port)"
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } },
          "destinations": { "fast": { "url": "\(base)/fast" }, "slow": { "url": "\(base)/slow/300" } },
          "routes": [ { "name": "all", "to": ["fast"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop(); await downstream.stop() } }
        func scrape() async throws -> String { try await relay.metrics() }
        for i in 0..<4 { _ = try await relay.post("shop", body: json("{\"id\":\"g\(i)\"}")) }
        #expect(await downstream.wait { $0.count == 4 })
        let idle = try await scrape()
        #expect(sample(idle, "relay_replays_running") == 0)
        #expect(sample(idle, "relay_replay_deliveries_remaining") == 0)

        // Four deliveries one at a time, 300 ms each: running for at least 1.2 s.
        let answer = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"source":"shop"},"destinations":["slow"],"concurrency":1}"#))
        let id = try #require(replayID(answer))
        var running = ""
        for _ in 0..<1500 {
            running = try await scrape()
            if sample(running, "relay_replays_running") == 1 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(sample(running, "relay_replays_running") == 1, "seen running")
        #expect((sample(running, "relay_replay_deliveries_remaining") ?? 0) > 0, "with deliveries left")

        #expect(try await finished(relay, id)?["succeeded"]?.doubleValue == 4)
        let done = try await scrape()
        #expect(sample(done, "relay_replays_running") == 0)
        #expect(sample(done, "relay_replay_deliveries_remaining") == 0)
        await relay.stop()
        await downstream.stop()
    }
}
