import RelayCore
import Logging

/// The journal as the ingest store: the de-duplication index decides (claiming keys, so
/// concurrent copies of one event store it once), and one journal append per batch, group
/// committed with other requests' batches, makes the new events and their routing decisions
/// durable. The completion runs on the journal's writer thread.
public final class JournalIngestStore: IngestStore {
    private let journal: Journal
    /// Which provider events are already stored (rebuilt from the journal at start-up, saved in
    /// checkpoints).
    public let deduplication: DeduplicationIndex
    private let logger: Logger

    public init(journal: Journal, deduplication: DeduplicationIndex = DeduplicationIndex(), logger: Logger) {
        self.journal = journal
        self.deduplication = deduplication
        self.logger = logger
    }

    public func store(_ candidates: [IngestCandidate], completion: @escaping @Sendable (Result<[IngestOutcome], IngestError>) -> Void) {
        var outcomes: [IngestOutcome] = []
        outcomes.reserveCapacity(candidates.count)
        var held: [DeduplicationIndex.Key] = []
        var committed: [(key: DeduplicationIndex.Key, id: String, receivedAt: Timestamp)] = []
        var entries: [JournalEntry] = []
        entries.reserveCapacity(candidates.count * 2)
        var inBatch: [DeduplicationIndex.Key: String] = [:]
        for candidate in candidates {
            let event = candidate.event
            if !event.providerEventID.isEmpty {
                let key = DeduplicationIndex.Key(source: event.source, providerEventID: event.providerEventID)
                if let earlier = inBatch[key] {
                    outcomes.append(.duplicate(id: earlier))  // the same event twice in one batch
                    continue
                }
                switch deduplication.claim(key, now: event.receivedAt) {
                case .new:
                    held.append(key)
                    inBatch[key] = event.id
                    committed.append((key, event.id, event.receivedAt))
                case .duplicate(let id):
                    inBatch[key] = id
                    outcomes.append(.duplicate(id: id))
                    continue
                case .busy:
                    // Another request holds this key. Never hold claims while waiting for
                    // another's (two batches could deadlock): give ours back, start over once
                    // that one has been stored or given up.
                    deduplication.release(held)
                    deduplication.whenReleased(key) { self.store(candidates, completion: completion) }
                    return
                }
            }
            outcomes.append(.stored(id: event.id))
            // Each event is followed by its routing decision, in the same group commit.
            entries.append(event.journalEntry)
            entries.append(candidate.decision.journalEntry)
        }
        guard !entries.isEmpty else { return completion(.success(outcomes)) }
        let deduplication = self.deduplication
        let logger = self.logger
        let source = candidates.first?.event.source ?? ""
        let (claimed, stored, answers) = (held, committed, outcomes)
        journal.append(entries, overQueueLimit: false) { result in
            switch result {
            case .success:
                deduplication.commit(stored)
                completion(.success(answers))
            case .failure(let error):
                deduplication.release(claimed)
                completion(.failure(Self.ingestError(error, source: source, logger: logger)))
            }
        }
    }

    private static func ingestError(_ error: any Error, source: String, logger: Logger) -> IngestError {
        if let error = error as? JournalError {
            if error.code == .overloaded { return IngestError(.overloaded, "the relay is busy writing; retry shortly") }
            if error.code == .recordTooLarge { return IngestError(.tooLarge, "an event is too large to store: \(error.message)") }
        }
        logger.error("journal append failed; answering 503", metadata: ["source": "\(source)", "error": "\(error)"])
        return IngestError(.unavailable, "the journal cannot store events right now; nothing was stored, retry later")
    }

    /// Rebuilds the de-duplication keys from every event in `reader` (the server does this in
    /// the delivery scheduler's start-up pass instead, from its last checkpoint).
    public func recover(from reader: JournalReader, now: Timestamp) throws {
        while let record = try reader.next() {
            guard record.type == .event else { continue }
            deduplication.observe(try EventHeader(decoding: record.payload), now: now)
        }
    }
}
