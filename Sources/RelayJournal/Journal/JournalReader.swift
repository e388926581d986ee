import RelayCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads records in sequence order from any starting sequence, across segments, while the
/// journal keeps writing. It never reads past `limit` (the durable end), so it never sees a
/// record that has not been acknowledged as durable.
///
/// Not `Sendable`: one reader belongs to one task. `next()` returns nil when it has caught up;
/// calling it again later continues with records written since.
public final class JournalReader {
    private let directory: String
    private let maxRecordSize: Int
    private let limit: (@Sendable () -> JournalPosition)?
    private var from: UInt64
    private var segmentBase: UInt64?
    /// Where to start in the first segment opened, when the caller knows the record's position.
    private var startPosition: JournalPosition?
    private var fd: Int32 = -1
    private var scanner: SegmentScanner?
    private var segmentPath = ""

    /// A reader over `directory`. With `limit` nil it reads every complete record on disk (for
    /// offline tools); a torn tail in the last segment then reads as the end.
    public init(directory: String, from sequence: UInt64 = 1, maxRecordSize: Int = 16 << 20, limit: (@Sendable () -> JournalPosition)? = nil) {
        self.directory = directory
        self.maxRecordSize = maxRecordSize
        self.limit = limit
        self.from = max(1, sequence)
    }

    /// A reader that starts at the record at `position`, whose sequence is `sequence`, without
    /// scanning its segment from the beginning (positions come from records read earlier).
    public convenience init(directory: String, at position: JournalPosition, sequence: UInt64, maxRecordSize: Int = 16 << 20, limit: (@Sendable () -> JournalPosition)? = nil) {
        self.init(directory: directory, from: sequence, maxRecordSize: maxRecordSize, limit: limit)
        startPosition = position
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// The next record, or nil if there is none (yet).
    public func next() throws -> JournalRecord? {
        while true {
            if scanner == nil {
                guard try openSegment() else { return nil }
            }
            guard var current = scanner, let base = segmentBase else { return nil }
            let bound = limit?()
            // A segment newer than the durable end may hold records not yet synced (or about to
            // be rolled back): never read it.
            if let bound, base > bound.segment { return nil }
            let path = segmentPath
            // The file's size is read again only when the scanner has reached the size read last
            // (a stat per record costs more than the checksum): records are never rewritten.
            var sizeIsFresh = false
            if let bound, bound.segment == base {
                current.end = bound.offset
            } else if current.offset >= current.end {
                current.end = try SegmentScanner.fileSize(fd, path: path)
                sizeIsFresh = true
            }
            let step = try current.next()
            scanner = current
            switch step {
            case .record(let sequence, let type, let payload, let offset, _):
                if sequence < from { continue }
                from = sequence + 1
                return JournalRecord(sequence: sequence, type: type, payload: payload, position: JournalPosition(segment: base, offset: offset))
            case .end, .incomplete, .invalid:
                if !sizeIsFresh, bound?.segment != base {
                    // Judge the end only against the file's current size.
                    let known = current.end
                    current.end = try SegmentScanner.fileSize(fd, path: path)
                    if current.end > known {
                        scanner = current
                        continue
                    }
                }
                var isEnd = false
                if case .end = step { isEnd = true }
                if let bound, bound.segment == base {
                    // The durable end is in this segment: either caught up, or damage in acknowledged data.
                    if isEnd { return nil }
                    throw JournalError(.corrupt, "unreadable record at offset \(current.offset) before the durable end; run `relay journal verify`", path: path)
                }
                let later = try JournalRecovery.segmentBases(in: directory).contains { $0 > base }
                if isEnd {
                    guard later else { return nil }
                    closeSegment()
                    continue
                }
                // Offline, a torn tail of the last segment is where the log ends (recovery will cut it).
                if !later && limit == nil { return nil }
                throw JournalError(.corrupt, "unreadable record at offset \(current.offset); run `relay journal verify`", path: path)
            }
        }
    }

    private func closeSegment() {
        if fd >= 0 { close(fd) }
        fd = -1
        scanner = nil
    }

    /// Opens the segment holding `from` (or the first one after it); false if there is none.
    /// A segment that retention deleted between the listing and the open is skipped.
    private func openSegment() throws -> Bool {
        var deleted: Set<UInt64> = []
        while true {
            let bases = try JournalRecovery.segmentBases(in: directory).filter { !deleted.contains($0) }
            let candidate: UInt64?
            if let current = segmentBase {
                candidate = bases.first { $0 > current }
            } else if let start = startPosition, bases.contains(start.segment) {
                candidate = start.segment
            } else {
                candidate = bases.last { $0 <= from } ?? bases.first
            }
            guard let base = candidate else { return false }
            do {
                return try open(base)
            } catch let error as JournalError where error.errno == ENOENT && base != bases.last {
                deleted.insert(base)
            }
        }
    }

    private func open(_ base: UInt64) throws -> Bool {
        let path = directory + "/" + JournalFormat.segmentName(base: base)
        let descriptor = try SegmentScanner.openReadOnly(path)
        fd = descriptor
        var offset = UInt64(JournalFormat.segmentHeaderSize)
        if segmentBase == nil, let start = startPosition, start.segment == base, start.offset >= offset { offset = start.offset }
        segmentBase = base
        segmentPath = path
        scanner = SegmentScanner(fd: descriptor, path: path, offset: offset, end: 0, maxPayload: maxRecordSize)
        return true
    }
}
