import RelayCore
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
            case .record(let sequence, _, _, let offset, _):
                if sequence != expected {
                    cut = (offset, "sequence \(sequence) where \(expected) was expected")
                    break scan
                }
                expected += 1
            case .incomplete(let offset):
                cut = (offset, "incomplete record")
                break scan
            case .invalid(let offset, let reason, _):
                cut = (offset, reason)
                break scan
            }
        }

        let file = try fs.openWritable(path: path, create: false)
        var end = size
        if let cut {
            // A crash tears only the last group commit. If a later, complete commit follows the
            // damage, the damaged records were acknowledged: refuse rather than cut them away.
            let tail = try SegmentScanner.read(fd: fd, path: path, offset: cut.offset, count: Int(size - cut.offset))
            if let later = laterCommit(in: tail, expectedAtLeast: expected, maxPayload: configuration.maxRecordSize) {
                file.close()
                throw JournalError(
                    .corrupt,
                    "record at offset \(cut.offset) is damaged (\(cut.reason)) but a later commit follows at offset \(cut.offset + UInt64(later)); "
                        + "acknowledged records would be lost, so nothing is truncated. Run `relay journal verify` and restore the segment from a backup",
                    path: path
                )
            }
            // Keep the cut bytes beside the segment (not a .seg file, so never read as journal).
            let aside = "\(path).torn-\(cut.offset)"
            let saved = FileManager.default.createFile(atPath: aside, contents: Data(tail))
            try file.truncate(to: cut.offset)
            try file.sync()
            end = cut.offset
            logger.warning(
                "journal tail was torn or corrupt; truncated to the last good record",
                metadata: [
                    "segment": "\(name)", "offset": "\(cut.offset)", "dropped_bytes": "\(size - cut.offset)",
                    "reason": "\(cut.reason)", "saved_to": "\(saved ? (aside as NSString).lastPathComponent : "(could not be saved)")",
                ]
            )
        }
        return Result(file: file, segmentBase: base, endOffset: end, nextSequence: expected)
    }

    /// The offset in `tail` of a record that belongs to a commit *after* the one the damage is
    /// in, if there is one: a valid record past the damage that starts a commit, or one that
    /// follows a commit-end record. A commit is written only after the one before it was synced,
    /// so such a record proves the damaged records were acknowledged.
    static func laterCommit(in tail: [UInt8], expectedAtLeast expected: UInt64, maxPayload: Int) -> Int? {
        let header = JournalFormat.recordHeaderSize
        let ceiling = expected + UInt64(tail.count / header)
        return tail.withUnsafeBytes { raw -> Int? in
            var index = 1
            var sawCommitEnd = false
            while index + header <= raw.count {
                let sequence = raw.loadLE(UInt64.self, at: index + 8)
                let length = Int(raw.loadLE(UInt32.self, at: index))
                // Cheap checks first, so random bytes rarely cost a checksum.
                if sequence >= expected, sequence <= ceiling, length <= maxPayload, index + header + length <= raw.count,
                   case .record(_, _, _, let size, let startsCommit, let endsCommit) = JournalFormat.parseFrame(UnsafeRawBufferPointer(rebasing: raw[index...]), maxPayload: maxPayload) {
                    if sawCommitEnd || startsCommit { return index }
                    sawCommitEnd = endsCommit
                    index += size
                    continue
                }
                index += 1
            }
            return nil
        }
    }
}
