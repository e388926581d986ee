import Foundation
import Logging

/// Start-up: lists the segments, checks the last one record by record, and truncates a torn or
/// corrupt tail (a crash mid-write) to the last good record. Corruption that is followed by
/// valid records is not a torn tail; it is refused rather than silently cut away.
enum JournalRecovery {
    struct Result {
        var file: any JournalWritableFile
        var segmentBase: UInt64
        var endOffset: UInt64
        var nextSequence: UInt64
    }

    /// The segment bases present in `directory`, ascending.
    static func segmentBases(in directory: String) throws -> [UInt64] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw JournalError(.io, "cannot list journal directory: \(error.localizedDescription)", path: directory)
        }
        return names.compactMap(JournalFormat.segmentBase(fileName:)).sorted()
    }

    static func recover(_ configuration: JournalConfiguration, logger: Logger) throws -> Result {
        let directory = configuration.directory
        let fs = configuration.fileSystem
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw JournalError(.io, "cannot create journal directory: \(error.localizedDescription)", path: directory)
        }
        guard let base = try segmentBases(in: directory).last else {
            let path = directory + "/" + JournalFormat.segmentName(base: 1)
            let file = try fs.openWritable(path: path, create: true)
            try JournalFormat.segmentHeader(base: 1).withUnsafeBytes { try file.write($0, at: 0) }
            try file.sync()
            try fs.syncDirectory(path: directory)
            return Result(file: file, segmentBase: 1, endOffset: UInt64(JournalFormat.segmentHeaderSize), nextSequence: 1)
        }
        let name = JournalFormat.segmentName(base: base)
        let path = directory + "/" + name
        let fd = try SegmentScanner.openReadOnly(path)
        defer { close(fd) }
        let size = try SegmentScanner.fileSize(fd, path: path)
        let headerSize = UInt64(JournalFormat.segmentHeaderSize)
        let header = try SegmentScanner.read(fd: fd, path: path, offset: 0, count: JournalFormat.segmentHeaderSize)
        let headerBase = header.withUnsafeBytes { JournalFormat.parseSegmentHeader($0) }

        if headerBase == nil && size < headerSize {
            // Crashed while creating the segment: it never held a record. Write its header again.
            logger.warning("journal segment header incomplete; rewriting it", metadata: ["segment": "\(name)", "offset": "0"])
            let file = try fs.openWritable(path: path, create: false)
            try file.truncate(to: 0)
            try JournalFormat.segmentHeader(base: base).withUnsafeBytes { try file.write($0, at: 0) }
            try file.sync()
            return Result(file: file, segmentBase: base, endOffset: headerSize, nextSequence: base)
        }
        guard let headerBase, headerBase == base else {
            throw JournalError(.corrupt, "segment header is invalid or does not match its file name; run `relay journal verify`", path: path)
        }

        var scanner = SegmentScanner(fd: fd, path: path, offset: headerSize, end: size, maxPayload: configuration.maxRecordSize)
        var expected = base
        var cut: (offset: UInt64, reason: String)?
        scan: while true {
            switch try scanner.next() {
            case .end:
                break scan
            case .record(let sequence, _, _, let offset, let recordSize):
                if sequence != expected {
                    if try validRecordFollows(fd: fd, path: path, at: offset + UInt64(recordSize), size: size, configuration: configuration) {
                        throw JournalError(.corrupt, "record at offset \(offset) has sequence \(sequence), expected \(expected); run `relay journal verify`", path: path)
                    }
                    cut = (offset, "sequence \(sequence) where \(expected) was expected")
                    break scan
                }
                expected += 1
            case .incomplete(let offset):
                cut = (offset, "incomplete record")
                break scan
            case .invalid(let offset, let reason, let declaredSize):
                if let declaredSize,
                   try validRecordFollows(fd: fd, path: path, at: offset + UInt64(declaredSize), size: size, configuration: configuration) {
                    throw JournalError(
                        .corrupt,
                        "record at offset \(offset) is corrupt (\(reason)) but valid records follow it; not truncating. Run `relay journal verify` and restore the segment from a backup",
                        path: path
                    )
                }
                cut = (offset, reason)
                break scan
            }
        }

        let file = try fs.openWritable(path: path, create: false)
        var end = size
        if let cut {
            try file.truncate(to: cut.offset)
            try file.sync()
            end = cut.offset
            logger.warning(
                "journal tail was torn or corrupt; truncated to the last good record",
                metadata: ["segment": "\(name)", "offset": "\(cut.offset)", "dropped_bytes": "\(size - cut.offset)", "reason": "\(cut.reason)"]
            )
        }
        return Result(file: file, segmentBase: base, endOffset: end, nextSequence: expected)
    }

    /// Whether a complete, valid record starts at `offset`: the sign that the damage before it
    /// is not a torn tail.
    private static func validRecordFollows(fd: Int32, path: String, at offset: UInt64, size: UInt64, configuration: JournalConfiguration) throws -> Bool {
        guard offset < size else { return false }
        var probe = SegmentScanner(fd: fd, path: path, offset: offset, end: size, maxPayload: configuration.maxRecordSize)
        if case .record = try probe.next() { return true }
        return false
    }
}
