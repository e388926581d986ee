import ArgumentParser
import RelayCore

struct Journal: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Offline journal tools.", subcommands: [Verify.self])

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

