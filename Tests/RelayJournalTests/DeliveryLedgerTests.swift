import Foundation
import Logging
import RelayCore
@testable import RelayJournal
import RelayTesting
import Testing

/// A real journal in a temporary directory, written the way ingest and the scheduler write it.
final class JournalFixture {
    let directory: TemporaryDirectory
    let journal: Journal
    var ids: [UInt64: String] = [:]
    private var counter = 0

    init() throws {
        directory = try TemporaryDirectory()
        journal = try Journal.open(JournalConfiguration(directory: directory.path + "/journal"), logger: makeTestLogger())
    }

    deinit { directory.remove() }

    var checkpoints: CheckpointStore { CheckpointStore(directory: directory.path + "/journal") }

    /// Appends `count` events, each routed to `destinations`, one commit each; returns their sequences.
    @discardableResult
    func events(_ count: Int, to destinations: [String], keys: (Int) -> String? = { _ in nil }) async throws -> [UInt64] {
        var sequences: [UInt64] = []
        for _ in 0..<count {
            counter += 1
            let id = "evt_\(String(repeating: "0", count: 20))\(String(format: "%06d", counter))"
            let event = Event(id: id, source: "shop", provider: "generic", providerEventID: "p\(counter)", receivedAt: Timestamp(milliseconds: 1_000_000 + Int64(counter)), body: Array("{}".utf8))
            var decision = RoutingDecision(eventID: id, configVersion: "v", routes: ["r"], destinations: destinations)
            if let key = keys(counter) { decision.orderingKeys = Dictionary(uniqueKeysWithValues: destinations.map { ($0, key) }) }
            let appended = try await journal.append([event.journalEntry, decision.journalEntry])
            ids[appended[0]] = id
            sequences.append(appended[0])
        }
        return sequences
    }

    func outcome(_ sequence: UInt64, _ destination: String, attempt: Int, _ outcome: DeliveryRecord.Outcome, due: Int64? = nil) async throws {
        let record = DeliveryRecord(
            eventSequence: sequence, eventID: ids[sequence] ?? "", destination: destination, attempt: attempt, time: Timestamp(milliseconds: 2_000_000),
            outcome: outcome, status: outcome == .succeeded ? 200 : 503, error: "", durationMillis: 1, nextDue: due.map { Timestamp(milliseconds: $0) }
        )
        _ = try await journal.append(record.journalEntry)
    }

    func recover(
        window: Int, participants: [any CheckpointParticipant] = [], checkpoints: CheckpointStore? = nil, destinations: [String: DestinationConfig] = [:],
        logger: Logger = makeTestLogger()
    ) throws -> (DeliveryLedger, DeliveryLedger.Recovery) {
        try DeliveryLedger.recover(
            journal: journal, checkpoints: checkpoints, participants: participants, window: window,
            destinations: destinations, now: Timestamp(milliseconds: 3_000_000), logger: logger
        )
    }

    /// Saves `state` as a checkpoint the way the scheduler does.
    func save(_ state: DeliveryLedger, participants: [any CheckpointParticipant] = []) throws {
        var sections = [DeliveryLedger.checkpointSection: state.encoded()]
        for participant in participants { sections[participant.checkpointSection] = participant.checkpointSnapshot()() }
        guard let position = state.lastPosition else { throw CheckpointError("no position") }
        try checkpoints.save(Checkpoint(sequence: state.lastSequence, position: position, sections: sections))
    }
}

/// Every pending delivery of a lane, with what must survive a restart: attempts and due time.
func pendingSummary(_ state: DeliveryLedger, _ lane: String, readingBack journal: Journal? = nil) -> [UInt64: (attempts: Int, due: Int64)] {
    guard let lane = state.lanes[lane] else { return [:] }
    if let journal {
        state.refill("d", lane, journal: journal, now: Timestamp(milliseconds: 3_000_000), logger: makeTestLogger())
    }
    return lane.state.queue.pending.mapValues { ($0.attempts, $0.due.milliseconds) }
}

@Suite struct DeliveryLedgerTests {
    @Test func recoveryKeepsAttemptsOfDeliveriesBeyondTheWindow() async throws {
        let fixture = try JournalFixture()
        let sequences = try await fixture.events(10, to: ["d"])
        // An earlier run's window moved on: 1…5 succeeded, 6…8 failed twice.
        for sequence in sequences[0..<5] { try await fixture.outcome(sequence, "d", attempt: 1, .succeeded) }
        for sequence in sequences[5..<8] {
            try await fixture.outcome(sequence, "d", attempt: 1, .retry, due: 2_500_000)
            try await fixture.outcome(sequence, "d", attempt: 2, .retry, due: 2_600_000)
        }
        // With a window of 4, 6…10 are beyond it when their outcomes are read.
        let (state, recovery) = try fixture.recover(window: 4)
        #expect(recovery.checkpoint == nil)
        #expect(state.lanes["d"]?.overflowFrom != nil)
        let pending = pendingSummary(state, "d", readingBack: fixture.journal)
        #expect(Set(pending.keys) == Set(sequences[5..<9]))
        for sequence in sequences[5..<8] {
            #expect(pending[sequence]?.attempts == 2, "attempts of event \(sequence) survive the restart")
            #expect(pending[sequence]?.due == 2_600_000)
        }
        #expect(pending[sequences[8]]?.attempts == 0)
    }

    @Test func checkpointThenTailEqualsFullReplay() async throws {
        let fixture = try JournalFixture()
        let dedup = DeduplicationIndex()
        let first = try await fixture.events(6, to: ["d", "e"])
        try await fixture.outcome(first[0], "d", attempt: 1, .succeeded)
        try await fixture.outcome(first[1], "d", attempt: 1, .retry, due: 2_100_000)
        let (before, _) = try fixture.recover(window: 4, participants: [dedup])
        try fixture.save(before, participants: [dedup])

        // After the checkpoint: more events and outcomes, some for deliveries it holds.
        let second = try await fixture.events(4, to: ["d"])
        try await fixture.outcome(first[1], "d", attempt: 2, .retry, due: 2_200_000)
        try await fixture.outcome(first[2], "e", attempt: 1, .dead)
        try await fixture.outcome(second[0], "d", attempt: 1, .succeeded)

        let restored = DeduplicationIndex()
        let (fromCheckpoint, recovery) = try fixture.recover(window: 4, participants: [restored], checkpoints: fixture.checkpoints)
        #expect(recovery.checkpoint == before.lastSequence)
        #expect(recovery.records == Int(fixture.journal.durable.lastSequence - before.lastSequence), "only the records after the checkpoint are read")
        let (full, fullRecovery) = try fixture.recover(window: 4)
        #expect(fullRecovery.records == Int(fixture.journal.durable.lastSequence))
        for lane in ["d", "e"] {
            let a = pendingSummary(fromCheckpoint, lane, readingBack: nil)
            let b = pendingSummary(full, lane, readingBack: nil)
            #expect(a.mapValues { "\($0.attempts)@\($0.due)" } == b.mapValues { "\($0.attempts)@\($0.due)" }, "lane \(lane)")
            #expect(fromCheckpoint.lanes[lane]?.state.succeeded == full.lanes[lane]?.state.succeeded)
            #expect(fromCheckpoint.lanes[lane]?.state.dead == full.lanes[lane]?.state.dead)
            #expect(fromCheckpoint.lanes[lane]?.overflowFrom == full.lanes[lane]?.overflowFrom)
        }
        #expect(pendingSummary(fromCheckpoint, "d")[first[1]]?.attempts == 2)
        // The de-duplication keys came back too: from the checkpoint, and from the events after it.
        for index in [1, 6, 10] {
            let claim = restored.claim(DeduplicationIndex.Key(source: "shop", providerEventID: "p\(index)"), now: Timestamp(milliseconds: 3_000_000))
            #expect(claim != .new, "key p\(index) restored")
        }
        #expect(restored.count == 10)
    }

    /// `on_dead: hold` across restarts: a dead delivery's hold comes back from the records
    /// alone and from a checkpoint (in the window and beyond it), and an operator's release
    /// record frees the key for good.
    @Test func heldKeysSurviveARestartUntilReleased() async throws {
        let fixture = try JournalFixture()
        var ordered = DestinationConfig(name: "d", url: "http://127.0.0.1:9/d", maxInFlight: 4)
        ordered.ordering = DeliveryOrdering(key: .orderID, onDead: .hold)
        let destinations = ["d": ordered]
        // Events 1…12: keys a, b, c in turn; a's first and c's first die.
        let sequences = try await fixture.events(12, to: ["d"]) { ["a", "b", "c"][($0 - 1) % 3] }
        try await fixture.outcome(sequences[0], "d", attempt: 1, .dead)
        try await fixture.outcome(sequences[1], "d", attempt: 1, .succeeded)
        try await fixture.outcome(sequences[2], "d", attempt: 1, .dead)
        // b's second finishes and its third (event 8, beyond a window of 4) dies.
        try await fixture.outcome(sequences[4], "d", attempt: 1, .succeeded)
        try await fixture.outcome(sequences[7], "d", attempt: 1, .dead)
        func held(_ state: DeliveryLedger) -> [String] {
            (state.lanes["d"]?.state.status(overflowing: false).heldKeys ?? []).map { "\($0.key)@\($0.event.sequence)" }.sorted()
        }
        func blocked(_ state: DeliveryLedger) -> Int { state.lanes["d"]?.status.keysBlocked ?? -1 }
        func readBack(_ state: DeliveryLedger) {
            // Deliver what is in the window, so that the rest is read back into it.
            guard let lane = state.lanes["d"] else { return }
            for _ in 0..<4 {
                while let next = lane.state.queue.takeDue(now: Timestamp(milliseconds: 9_000_000)) { lane.state.queue.remove(next.eventSequence) }
                state.refill("d", lane, journal: fixture.journal, now: Timestamp(milliseconds: 3_000_000), logger: makeTestLogger())
            }
        }
        let (full, _) = try fixture.recover(window: 4, destinations: destinations)
        // b's hold is beyond the window: counted as blocked, listed once read back.
        #expect(held(full) == ["a@\(sequences[0])", "c@\(sequences[2])"] && blocked(full) == 3, "from the records alone")
        try fixture.save(full)
        let (fromCheckpoint, recovery) = try fixture.recover(window: 4, checkpoints: fixture.checkpoints, destinations: destinations)
        #expect(recovery.checkpoint != nil)
        #expect(held(fromCheckpoint) == held(full) && blocked(fromCheckpoint) == 3, "from a checkpoint")
        readBack(fromCheckpoint)
        #expect(held(fromCheckpoint) == ["a@\(sequences[0])", "b@\(sequences[7])", "c@\(sequences[2])"], "b's hold read back with its key")
        // The operator skips a's dead delivery; the release is journaled and read back.
        let release = KeyRelease(eventSequence: sequences[0], eventID: fixture.ids[sequences[0]] ?? "", destination: "d", time: Timestamp(milliseconds: 2_500_000))
        _ = try await fixture.journal.append(release.journalEntry)
        for checkpoints in [nil, fixture.checkpoints] {
            let (after, _) = try fixture.recover(window: 4, checkpoints: checkpoints, destinations: destinations)
            #expect(blocked(after) == 2, "a released (checkpoint: \(checkpoints != nil))")
            readBack(after)
            #expect(held(after) == ["b@\(sequences[7])", "c@\(sequences[2])"], "b and c still held (checkpoint: \(checkpoints != nil))")
        }
    }

    @Test func damagedOrForeignCheckpointFallsBackToTheWholeJournal() async throws {
        let fixture = try JournalFixture()
        let sequences = try await fixture.events(5, to: ["d"])
        try await fixture.outcome(sequences[0], "d", attempt: 1, .succeeded)
        let (state, _) = try fixture.recover(window: 10)
        try fixture.save(state)
        let path = fixture.checkpoints.path
        let lastPosition = try #require(state.lastPosition)

        /// Recovers with the checkpoint in place: it must be refused with exactly one warning,
        /// and the state rebuilt from the whole journal (event 0 succeeded, 1–4 pending).
        func expectFullReplay(_ label: String) throws {
            let (logger, logs) = makeLogger()
            let (rebuilt, recovery) = try fixture.recover(window: 10, checkpoints: fixture.checkpoints, logger: logger)
            #expect(recovery.checkpoint == nil, "\(label): the checkpoint was used")
            #expect(Set(pendingSummary(rebuilt, "d").keys) == Set(sequences[1...]), "\(label): pending not rebuilt")
            #expect(rebuilt.lanes["d"]?.state.succeeded == 1, "\(label): the success was not rebuilt")
            #expect(rebuilt.lastSequence == state.lastSequence, "\(label): not read to the end")
            let warnings = logs.messages.filter { $0.level == .warning }
            #expect(warnings.count == 1 && warnings.first?.message == "checkpoint not used; rebuilding from the whole journal", "\(label): \(warnings.map(\.message))")
        }

        // One flipped byte: the checksum catches it.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try expectFullReplay("damaged")

        // A checkpoint naming a record this journal does not have at that position (another
        // relay's checkpoint copied in), with another state in it that must not be restored.
        let (nothingPending, _) = try JournalFixture().recover(window: 10)
        let foreign = Checkpoint(sequence: state.lastSequence, position: JournalPosition(segment: 1, offset: 24), sections: [DeliveryLedger.checkpointSection: nothingPending.encoded()])
        try fixture.checkpoints.save(foreign)
        try expectFullReplay("foreign")

        // One ahead of the journal (restored from an older backup).
        try fixture.checkpoints.save(Checkpoint(sequence: state.lastSequence + 50, position: lastPosition, sections: [:]))
        try expectFullReplay("ahead")

        // And the good checkpoint is used, with no warning.
        try fixture.save(state)
        let (logger, logs) = makeLogger()
        let (_, used) = try fixture.recover(window: 10, checkpoints: fixture.checkpoints, logger: logger)
        #expect(used.checkpoint == state.lastSequence)
        #expect(!logs.messages.contains { $0.level == .warning })
    }

    @Test func checkpointFileRoundTripsAndRejectsTruncation() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let store = CheckpointStore(directory: dir.path)
        #expect(try store.load() == nil)
        let large = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let checkpoint = Checkpoint(sequence: 42, position: JournalPosition(segment: 1, offset: 999), sections: ["a": [1, 2, 3], "b": [], "large": large])
        let size = try store.save(checkpoint)
        // The file is written piece by piece; it must be exactly the one-buffer encoding.
        let bytes = checkpoint.encoded()
        let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: store.path)))
        #expect(file == bytes && size == bytes.count)
        // Checked against the file itself, not only against the other encoding path: the last
        // four bytes are the CRC-32C of everything before them.
        let stored = file.suffix(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(file.count > 4 && CRC32C.checksum(file.dropLast(4)) == stored)
        #expect(Array(file.prefix(8)) == Array("RLYCKPT1".utf8))
        let loaded = try #require(try store.load())
        #expect(loaded == checkpoint)
        #expect(loaded.sections["large"].map(Array.init) == large)
        for cut in [0, 4, 8, bytes.count - 1] {
            #expect(throws: CheckpointError.self) { try Checkpoint(decoding: Array(bytes.prefix(cut))) }
        }
    }
}
