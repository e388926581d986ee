import RelayCore
import RelayTesting
import Testing

/// Per-key ordering as the queue of every store keeps it: only a key's oldest delivery is ever
/// handed out, a held key hands out nothing until released, and unordered deliveries flow
/// beside the keys.
@Suite struct DeliveryQueueOrderingTests {
    static let t0 = Timestamp(milliseconds: 1_000_000)

    func delivery(_ sequence: UInt64, key: String?, due: Int64 = 0) -> PendingDelivery {
        PendingDelivery(
            event: EventReference(sequence: sequence, locator: .init(high: 0, low: sequence * 100)), eventID: "evt_\(sequence)", receivedAt: Self.t0,
            attempts: 0, due: Timestamp(milliseconds: Self.t0.milliseconds + due), orderingKey: key
        )
    }

    func takeAll(_ queue: inout DeliveryQueue, at millis: Int64 = 0) -> [UInt64] {
        var taken: [UInt64] = []
        while let next = queue.takeDue(now: Timestamp(milliseconds: Self.t0.milliseconds + millis)) { taken.append(next.eventSequence) }
        return taken
    }

    @Test func onlyEachKeysOldestDeliveryIsHandedOutAndTheNextFollowsWhenItFinishes() {
        var queue = DeliveryQueue()
        // a: 1, 3, 5; b: 2, 4; no key: 6 (due first of all) and 7.
        for (sequence, key) in [(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a")] as [(UInt64, String)] {
            queue.insert(delivery(sequence, key: key))
        }
        queue.insert(delivery(6, key: nil, due: -5))
        queue.insert(delivery(7, key: nil))
        #expect(queue.activeKeys == 2)
        #expect(Set(takeAll(&queue)) == [1, 2, 6, 7], "one per key, every unordered one")
        // A failed attempt of a key's head comes back: the key still waits for it.
        queue.reschedule(1, attempts: 1, due: Timestamp(milliseconds: Self.t0.milliseconds + 500))
        queue.release(1)
        queue.remove(2)
        #expect(takeAll(&queue, at: 100) == [4], "b moves on; a waits for its retry")
        #expect(queue.nextDue() == Timestamp(milliseconds: Self.t0.milliseconds + 500))
        #expect(takeAll(&queue, at: 500) == [1])
        queue.remove(1)
        #expect(takeAll(&queue, at: 500) == [3])
        queue.remove(3)
        queue.remove(4)
        #expect(takeAll(&queue, at: 500) == [5])
        queue.remove(5)
        #expect(queue.activeKeys == 0 && queue.count == 2, "the unordered two are still in flight")
    }

    @Test func aHeldKeyHandsOutNothingUntilItsDeadDeliveryIsReleased() {
        var queue = DeliveryQueue()
        for sequence: UInt64 in 1...3 { queue.insert(delivery(sequence, key: "k")) }
        queue.insert(delivery(4, key: "other"))
        #expect(Set(takeAll(&queue)) == [1, 4])
        queue.hold(1, since: Timestamp(milliseconds: 42))
        queue.remove(4)
        #expect(takeAll(&queue, at: 10_000).isEmpty, "2 and 3 wait behind the dead 1")
        #expect(queue.nextDue() == nil)
        let held = queue.heldKeys
        #expect(held == [HeldKey(key: "k", eventID: "evt_1", event: EventReference(sequence: 1, locator: .init(high: 0, low: 100)), since: Timestamp(milliseconds: 42), waiting: 2)])
        #expect(queue.releaseHold(ofEvent: 2) == nil, "2 holds nothing")
        #expect(queue.releaseHold(ofEvent: 1) == "k")
        #expect(queue.heldKeys.isEmpty)
        #expect(takeAll(&queue) == [2])
        // A dead delivery without a key holds nothing.
        queue.insert(delivery(9, key: nil))
        #expect(takeAll(&queue) == [9])
        queue.hold(9, since: Self.t0)
        #expect(queue.held.isEmpty && queue.pending[9] == nil)
    }

    @Test func aHoldRestoredAfterARestartBlocksItsKeyAndOutOfOrderInsertsStaySorted() {
        var queue = DeliveryQueue()
        queue.restoreHold(HeldKey(key: "k", eventID: "evt_1", event: EventReference(sequence: 1, locator: .init(high: 0, low: 1)), since: Self.t0))
        // A checkpoint may list a key's deliveries in any order.
        for sequence: UInt64 in [7, 3, 5] { queue.insert(delivery(sequence, key: "k")) }
        #expect(takeAll(&queue).isEmpty)
        queue.releaseHold(ofEvent: 1)
        var order: [UInt64] = []
        while let next = queue.takeDue(now: Self.t0) {
            order.append(next.eventSequence)
            #expect(queue.takeDue(now: Self.t0) == nil, "one at a time")
            queue.remove(next.eventSequence)
        }
        #expect(order == [3, 5, 7])
    }

    @Test func manyKeysFlowInParallel() {
        var queue = DeliveryQueue()
        var sequence: UInt64 = 0
        for round in 0..<5 {
            for key in 0..<1_000 {
                sequence += 1
                queue.insert(delivery(sequence, key: "k\(key)", due: Int64(round)))
            }
        }
        let first = takeAll(&queue, at: 10)
        #expect(first.count == 1_000 && first.allSatisfy { $0 <= 1_000 }, "every key's first round, none of the later")
    }
}

@Suite struct OrderingConfigTests {
    func config(_ ordering: String) -> String {
        #"{ "sources": { "s": { "provider": "generic" } }, "destinations": { "d": { "url": "http://127.0.0.1:9/d", "ordering": \#(ordering) } } }"#
    }

    @Test func keysAreNormalizedFieldsOrJSONPointers() throws {
        for (text, key) in [("order_id", DeliveryOrdering.Key.orderID), ("source", .source), ("type", .type)] {
            let parsed = try RelayConfig.parse(Array(config(#"{ "key": "\#(text)" }"#).utf8), file: "routes.json", environment: [:])
            #expect(parsed.destinations["d"]?.ordering == DeliveryOrdering(key: key, onDead: .continue))
        }
        let pointer = try RelayConfig.parse(Array(config(#"{ "key": "/data/account", "on_dead": "hold" }"#).utf8), file: "routes.json", environment: [:])
        #expect(pointer.destinations["d"]?.ordering?.key.description == "/data/account")
        #expect(pointer.destinations["d"]?.ordering?.onDead == .hold)
    }

    @Test func badOrderingIsOneLinePerProblem() {
        let cases: [(String, String)] = [
            (#"{ "key": "customer" }"#, #"destinations.d.ordering.key: must be order_id, source, type or a JSON Pointer such as /data/account, not "customer""#),
            (#"{ "key": "/items/*/id" }"#, #"destinations.d.ordering.key: "/items/*/id" has a *, which reaches many values; an ordering key needs one"#),
            (#"{ }"#, "destinations.d.ordering.key: is required (order_id, source, type or a JSON Pointer into the payload)"),
            (#"{ "key": 3 }"#, "destinations.d.ordering.key: must be a string, not a number"),
            (#"{ "key": "order_id", "on_dead": "retry" }"#, #"destinations.d.ordering.on_dead: must be continue or hold, not "retry""#),
            (#""order_id""#, "destinations.d.ordering: must be an object, not a string"),
        ]
        for (ordering, expected) in cases {
            let issues = configIssues(config(ordering))
            #expect(issues == ["routes.json: " + expected], "\(ordering): \(issues)")
        }
        #expect(configIssues(config(#"{ "key": "order_id", "when": 1 }"#)).first?.contains("destinations.d.ordering.when") == true)
    }

    @Test func theRoutingDecisionCarriesEachOrderedDestinationsKey() throws {
        let parsed = try RelayConfig.parse(Array("""
        { "sources": { "s": { "provider": "generic" } },
          "destinations": { "byOrder": { "url": "http://127.0.0.1:9/a", "ordering": { "key": "order_id" } },
                            "byAccount": { "url": "http://127.0.0.1:9/b", "ordering": { "key": "/data/account" } },
                            "plain": { "url": "http://127.0.0.1:9/c" } },
          "routes": [ { "name": "all", "to": ["byOrder", "byAccount", "plain"] } ] }
        """.utf8), file: "routes.json", environment: [:])
        let event = Event(
            id: "evt_1", source: "s", provider: "generic", orderID: "o-1", providerEventID: "p1", receivedAt: Timestamp(milliseconds: 1),
            body: Array(#"{"data":{"account":"acc-9"}}"#.utf8)
        )
        let decision = parsed.routing.decide(event)
        #expect(decision.orderingKeys == ["byOrder": "o-1", "byAccount": "acc-9"])
        #expect(try RoutingDecision(decoding: decision.encoded()) == decision, "version 2 round trip")
        // No value at the key: not ordered there.
        let bare = Event(id: "evt_2", source: "s", provider: "generic", providerEventID: "p2", receivedAt: Timestamp(milliseconds: 1), body: Array("[]".utf8))
        #expect(parsed.routing.decide(bare).orderingKeys.isEmpty)
        // A long key is kept as its digest.
        let long = String(repeating: "x", count: 300)
        let big = Event(id: "evt_3", source: "s", provider: "generic", orderID: long, providerEventID: "p3", receivedAt: Timestamp(milliseconds: 1), body: Array("{}".utf8))
        #expect(parsed.routing.decide(big).orderingKeys["byOrder"]?.hasPrefix("sha256:") == true)
        // A decision without keys is still written as version 1.
        let plain = RoutingDecision(eventID: "evt_4", configVersion: "v", routes: ["all"], destinations: ["plain"])
        #expect(plain.encoded().first == 1)
        #expect(try RoutingDecision(decoding: plain.encoded()) == plain)
    }
}
