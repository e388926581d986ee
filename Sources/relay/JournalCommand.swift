import ArgumentParser
import Foundation
import RelayCore
import RelayJournal

/// `relay journal …` (named so it does not shadow the journal type itself).
struct JournalTools: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "journal", abstract: "Offline journal tools.", subcommands: [Verify.self, Latency.self, Fill.self])

    struct Latency: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End-to-end delivery figures from the journal: receive → destination 2xx, per successful delivery (used by scripts/bench)."
        )

        @Option(help: "The data directory (the journal is DATA/journal).")
        var data: String

        @Option(help: "Only events of this source.")
        var source: String?

        @Flag(help: "Only the events' own deliveries, not replays of them.")
        var liveOnly = false

        func run() throws {
            let reader = JournalReader(directory: data + "/journal")
            var received: [UInt64: Int64] = [:]
            var latencies: [Int64] = []
            var first = Int64.max, last = Int64.min
            do {
                while let record = try reader.next() {
                    switch record.type {
                    case .event:
                        let event = try Event(decoding: record.payload)
                        if let source, event.source != source { continue }
                        received[record.sequence] = event.receivedAt.milliseconds
                        first = min(first, event.receivedAt.milliseconds)
                    case .deliveryAttempt:
                        let delivery = try DeliveryRecord(decoding: record.payload)
                        guard delivery.outcome == .succeeded, !(liveOnly && !delivery.replayID.isEmpty), let start = received[delivery.eventSequence] else { continue }
                        latencies.append(delivery.time.milliseconds - start)
                        last = max(last, delivery.time.milliseconds)
                    default:
                        continue
                    }
                }
            } catch {
                throw fail("journal latency: \(error)")
            }
            guard !latencies.isEmpty else {
                print("events=\(received.count) delivered=0")
                return
            }
            latencies.sort()
            func percentile(_ p: Double) -> Int64 { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            let seconds = max(Double(last - first) / 1000, 0.001)
            print("events=\(received.count) delivered=\(latencies.count) seconds=\(String(format: "%.3f", seconds)) delivered_per_s=\(Int(Double(latencies.count) / seconds)) p50_ms=\(percentile(0.5)) p99_ms=\(percentile(0.99)) max_ms=\(latencies.last ?? 0)")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every record of every segment; exit 1 with the first bad offset per segment.")

        @Option(help: "The data directory (the journal is DATA/journal).")
        var data: String

        func run() throws {
            let directory = data + "/journal"
            let report: JournalVerifier.Report
            do {
                report = try JournalVerifier.verify(directory: directory)
            } catch {
                throw fail("journal verify: \(error)")
            }
            if report.segments.isEmpty { throw fail("journal verify: no segments in \(directory)") }
            for segment in report.segments {
                let range = segment.firstSequence.map { "\($0)…\(segment.lastSequence ?? $0)" } ?? "empty"
                if let problem = segment.problem {
                    print("\(segment.name): BAD at offset \(problem.offset): \(problem.reason) (\(segment.records) good records before it, sequences \(range))")
                } else {
                    print("\(segment.name): ok, \(segment.records) records, sequences \(range), \(segment.bytes) bytes")
                }
            }
            print("\(report.isIntact ? "intact" : "DAMAGED"): \(report.segments.count) segments, \(report.records) records")
            if !report.isIntact { throw ExitCode(1) }
        }
    }
}

