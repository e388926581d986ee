import ArgumentParser
import Foundation
import Logging
import RelayCore
import RelayJournal
import Synchronization

extension JournalTools {
    /// Writes a large, realistic journal quickly: for `scripts/bench` (restart time, memory with
    /// a long history) and for trying the relay with history. Offline: never while a relay runs
    /// on the same data directory.
    struct Fill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append synthetic events (a payload file's events with fresh ids), their routing decisions and delivery outcomes to a journal (offline; for benchmarks).",
            discussion: "Every event gets a new relay id and a new provider event id, so each one is a de-duplication key. Deliveries of all but the last --pending events are recorded as succeeded."
        )

        @Option(help: "The routes file.")
        var config: String = "routes.json"

        @Option(help: "The data directory (the journal is DATA/journal).")
        var data: String

        @Option(help: "The source the payload arrives at.")
        var source: String

        @Option(help: "How many events to append.")
        var events: Int

        @Option(help: "How many of the last events keep their deliveries pending (no outcome recorded).")
        var pending: Int = 0

        @Option(help: "Spread the events' receive times evenly over this long before now, oldest first (e.g. 60d), as if received then; default: now.")
        var spread: String?

        @Option(help: "With --spread: the newest receive time is this long before now (e.g. 31d); default 0.")
        var until: String?

        @Argument(help: "The payload file (the raw request body).")
        var payload: String

        func validate() throws {
            guard events > 0 else { throw ValidationError("--events: must be positive, not \(events)") }
            guard pending >= 0 && pending <= events else { throw ValidationError("--pending: must be between 0 and --events (\(events)), not \(pending)") }
        }

        func run() async throws {
            let loaded = try loadConfig(config, lenientSecrets: true)
            let templates = try routePayload(command: "journal fill", config: loaded, source: source, headers: HeaderList(), payload: payload)
            guard !templates.isEmpty else { throw fail("journal fill: \(payload): the payload holds no event") }
            var logger = Logger(label: "relay")
            logger.logLevel = .warning
            let journal: Journal
            do {
                journal = try Journal.open(JournalConfiguration(directory: data + "/journal"), logger: logger)
            } catch {
                throw fail("journal fill: \(data)/journal: \(error)")
            }
            var spreadMillis: Int64 = 0
            if let spread {
                guard let millis = Duration.parseMilliseconds(spread) else {
                    throw fail("journal fill: --spread: invalid duration \"\(spread)\" (a whole number with ms, s, m, h or d, e.g. 60d)", code: 2)
                }
                spreadMillis = millis
            }
            var untilMillis: Int64 = 0
            if let until {
                guard let millis = Duration.parseMilliseconds(until), millis <= spreadMillis else {
                    throw fail("journal fill: --until: invalid duration \"\(until)\" (a whole number with ms, s, m, h or d, at most --spread)", code: 2)
                }
                untilMillis = millis
            }
            spreadMillis -= untilMillis
            let start = SystemClock().now().milliseconds - untilMillis - spreadMillis
            // Ids carry their time: a back-dated event gets an id of its receive time.
            let receiveClock = FillClock(start)
            let ids = EventIDGenerator(clock: receiveClock)
            let batch = 2_000
            var written = 0
            do {
                while written < events {
                    let count = min(batch, events - written)
                    var entries: [JournalEntry] = []
                    var delivered: [(index: Int, event: Event, destinations: [String])] = []
                    for offset in 0..<count {
                        var event = templates[(written + offset) % templates.count].event
                        let index = Int64(written + offset)
                        receiveClock.set(start + (events > 1 ? spreadMillis * index / Int64(events - 1) : spreadMillis))
                        event.id = ids.next()
                        event.providerEventID = "fill-\(event.id)"
                        event.receivedAt = receiveClock.now()
                        let decision = loaded.routing.decide(event)
                        entries.append(event.journalEntry)
                        entries.append(decision.journalEntry)
                        if written + offset < events - pending { delivered.append((offset, event, decision.destinations)) }
                    }
                    let sequences = try await journal.append(entries)
                    var outcomes: [JournalEntry] = []
                    for item in delivered {
                        for destination in item.destinations {
                            outcomes.append(DeliveryRecord(
                                eventSequence: sequences[item.index * 2], eventID: item.event.id, destination: destination, attempt: 1,
                                time: item.event.receivedAt, outcome: .succeeded, status: 200, error: "", durationMillis: 1, nextDue: nil
                            ).journalEntry)
                        }
                    }
                    if !outcomes.isEmpty { _ = try await journal.append(outcomes) }
                    written += count
                }
            } catch {
                await journal.close()
                throw fail("journal fill: after \(written) events: \(error)")
            }
            await journal.close()
            let durable = journal.durable
            print("appended \(events) events (\(pending) with pending deliveries); journal ends at sequence \(durable.lastSequence)")
        }
    }
}

/// The receive time `journal fill` is writing events at.
final class FillClock: RelayClock {
    private let millis: Mutex<Int64>

    init(_ start: Int64) {
        millis = Mutex(start)
    }

    func set(_ value: Int64) { millis.withLock { $0 = value } }

    func now() -> Timestamp { Timestamp(milliseconds: millis.withLock { $0 }) }
}
