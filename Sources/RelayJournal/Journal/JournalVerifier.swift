import RelayCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `relay journal verify`: reads every segment and checks every record's framing, checksum and
/// sequence, offline. Reports the first bad offset of each segment.
public enum JournalVerifier {
    /// What was found in one segment.
    public struct SegmentReport: Sendable {
        public var name: String
        public var records: Int
        public var firstSequence: UInt64?
        public var lastSequence: UInt64?
        public var bytes: UInt64
        /// The first problem: its byte offset and what is wrong.
        public var problem: (offset: UInt64, reason: String)?
    }

    /// The whole journal.
    public struct Report: Sendable {
        public var segments: [SegmentReport]
        public var isIntact: Bool { segments.allSatisfy { $0.problem == nil } }
        public var records: Int { segments.reduce(0) { $0 + $1.records } }
    }

    public static func verify(directory: String, maxRecordSize: Int = 16 << 20) throws -> Report {
        var reports: [SegmentReport] = []
        var expected: UInt64?
        for base in try JournalRecovery.segmentBases(in: directory) {
            let name = JournalFormat.segmentName(base: base)
            let path = directory + "/" + name
            let fd = try SegmentScanner.openReadOnly(path)
            defer { close(fd) }
            let size = try SegmentScanner.fileSize(fd, path: path)
            var report = SegmentReport(name: name, records: 0, bytes: size)
            defer { reports.append(report) }

            let header = try SegmentScanner.read(fd: fd, path: path, offset: 0, count: JournalFormat.segmentHeaderSize)
            guard let headerBase = header.withUnsafeBytes({ JournalFormat.parseSegmentHeader($0) }) else {
                report.problem = (0, "invalid segment header")
                expected = nil
                continue
            }
            guard headerBase == base else {
                report.problem = (0, "header base sequence \(headerBase) does not match the file name")
                expected = nil
                continue
            }
            if let expected, expected != base {
                report.problem = (0, "segment starts at sequence \(base) but the previous segment ended before \(expected)")
            }
            var next = base
            var scanner = SegmentScanner(fd: fd, path: path, offset: UInt64(JournalFormat.segmentHeaderSize), end: size, maxPayload: maxRecordSize)
            scan: while true {
                switch try scanner.next() {
                case .end:
                    break scan
                case .record(let sequence, _, _, let offset, _):
                    if sequence != next {
                        if report.problem == nil { report.problem = (offset, "sequence \(sequence) where \(next) was expected") }
                        break scan
                    }
                    if report.firstSequence == nil { report.firstSequence = sequence }
                    report.lastSequence = sequence
                    report.records += 1
                    next += 1
                case .incomplete(let offset):
                    if report.problem == nil { report.problem = (offset, "incomplete record (torn tail)") }
                    break scan
                case .invalid(let offset, let reason, _):
                    if report.problem == nil { report.problem = (offset, reason) }
                    break scan
                }
            }
            expected = next
        }
        return Report(segments: reports)
    }
}
