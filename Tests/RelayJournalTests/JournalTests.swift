import Foundation
import Logging
@testable import RelayCore
@testable import RelayJournal
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

func payload(_ index: Int, size: Int = 40) -> [UInt8] {
    var bytes = Array("record-\(index)-".utf8)
    while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: index &* 31 &+ bytes.count)) }
    return bytes
}

func lastSegmentPath(_ directory: String) throws -> String {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".seg") }.sorted()
    return directory + "/" + names.last!
}

@Suite struct JournalTests {
    @Test func crc32cKnownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        let long = (0..<1000).map { UInt8($0 & 0xFF) }
        // Checksumming in pieces gives the same result as all at once.
        let split = CRC32C.checksum(long[500...], continuing: CRC32C.checksum(long[..<500]))
        #expect(split == CRC32C.checksum(long))
    }

    @Test func crc32cHardwareAndTableAgree() {
        // Every length 0…67 and every alignment 0…7 (the instruction path has 8-byte steps and a tail).
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<80).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<8 {
            for length in 0...67 {
                bytes[start..<(start + length)].withUnsafeBytes { raw in
                    #expect(CRC32C.checksum(raw, continuing: 0x1234_5678) == CRC32C.software(raw, continuing: 0x1234_5678))
                }
            }
        }
        "123456789".utf8.withContiguousStorageIfAvailable { buffer in
            #expect(CRC32C.software(UnsafeRawBufferPointer(buffer)) == 0xE306_9283)
        }
    }

    /// The writer thread has a name Linux keeps (15 characters at most), so profiles and `top -H`
    /// show its work as the journal's rather than an anonymous thread's.
    @Test func theWriterThreadIsNamedAsLinuxShowsIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let journal = try Journal.open(JournalConfiguration(directory: dir.path + "/journal"), logger: logger)
        _ = try await journal.append(JournalEntry(type: .event, payload: payload(0)))
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        let names = tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(names.contains("relay-journal"), "thread names: \(Set(names).sorted())")
        await journal.close()
    }

    @Test func roundTripAndReopen() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let config = JournalConfiguration(directory: dir.path + "/journal")
        let journal = try Journal.open(config, logger: logger)
        var sequences: [UInt64] = []
        for i in 0..<10 {
            sequences.append(try await journal.append(JournalEntry(type: .event, payload: payload(i))))
        }
        #expect(sequences == Array(1...10))
        #expect(journal.durable.lastSequence == 10)
        await journal.close()
        let closed = await #expect(throws: JournalError.self) { try await journal.append(JournalEntry(type: .event, payload: [1])) }
        #expect(closed?.code == .closed)

        let reopened = try Journal.open(config, logger: logger)
        #expect(reopened.durable.lastSequence == 10)
        let next = try await reopened.append(JournalEntry(type: .routingDecision, payload: payload(10)))
        #expect(next == 11)
        let records = try readAll(config.directory)
        #expect(records.map(\.sequence) == Array(1...11))
        #expect(records.map(\.payload) == (0...10).map { payload($0) })
        #expect(records.last?.type == .routingDecision)
        // Reading from the middle starts at that sequence.
        #expect(try readAll(config.directory, from: 7).map(\.sequence) == Array(7...11))
        await reopened.close()
        #expect(try JournalVerifier.verify(directory: config.directory).isIntact)
    }

    @Test func concurrentAppendersAreAllDurableAndOrdered() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let config = JournalConfiguration(directory: dir.path + "/journal")
        let journal = try Journal.open(config, logger: logger)
        let results = try await withThrowingTaskGroup(of: [(UInt64, [UInt8])].self) { group in
            for task in 0..<64 {
                group.addTask {
                    var mine: [(UInt64, [UInt8])] = []
                    for i in 0..<20 {
                        let bytes = payload(task * 1000 + i, size: 100)
                        // Some appends carry two records that must land together.
                        if i % 5 == 0 {
                            let numbers = try await journal.append([JournalEntry(type: .event, payload: bytes), JournalEntry(type: .event, payload: bytes)])
                            #expect(numbers.count == 2 && numbers[1] == numbers[0] + 1)
                            mine.append((numbers[0], bytes))
                            mine.append((numbers[1], bytes))
                        } else {
                            mine.append((try await journal.append(JournalEntry(type: .event, payload: bytes)), bytes))
                        }
                    }
                    return mine
                }
            }
            var all: [(UInt64, [UInt8])] = []
            for try await part in group { all += part }
            return all
        }
        await journal.close()
        #expect(results.count == 64 * 24)
        let bySequence = Dictionary(uniqueKeysWithValues: results.map { ($0.0, $0.1) })
        #expect(bySequence.count == results.count, "every append got its own sequence numbers")
        let records = try readAll(config.directory)
        #expect(records.map(\.sequence) == Array(1...UInt64(results.count)))
        for record in records {
            #expect(bySequence[record.sequence] == record.payload)
        }
    }

    @Test func rotatesSegmentsAndReadsAcrossThem() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let config = JournalConfiguration(directory: dir.path + "/journal", segmentSize: 4096)
        let journal = try Journal.open(config, logger: logger)
        for i in 0..<300 {
            _ = try await journal.append(JournalEntry(type: .event, payload: payload(i, size: 200)))
        }
        await journal.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: config.directory).filter { $0.hasSuffix(".seg") }
        #expect(segments.count >= 10)
        let records = try readAll(config.directory)
        #expect(records.map(\.sequence) == Array(1...300))
        #expect(records.map(\.payload) == (0..<300).map { payload($0, size: 200) })
        // A reader starting mid-journal finds the right segment.
        #expect(try readAll(config.directory, from: 250).first?.sequence == 250)
        // …and one given a record's position starts right there, across later segments too.
        let reader = JournalReader(directory: config.directory, at: records[149].position, sequence: 150)
        var fromPosition: [UInt64] = []
        while let record = try reader.next() { fromPosition.append(record.sequence) }
        #expect(fromPosition == Array(150...300))
        let report = try JournalVerifier.verify(directory: config.directory)
        #expect(report.isIntact)
        #expect(report.records == 300)
        #expect(report.segments.count == segments.count)
    }

    @Test func readerSeesOnlyDurableRecordsWhileWritesContinue() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let journal = try Journal.open(JournalConfiguration(directory: dir.path + "/journal", segmentSize: 2048), logger: logger)
        let reader = journal.reader()
        #expect(try reader.next() == nil)
        var seen: [UInt64] = []
        for round in 0..<5 {
            for i in 0..<20 {
                _ = try await journal.append(JournalEntry(type: .event, payload: payload(round * 20 + i, size: 120)))
            }
            while let record = try reader.next() { seen.append(record.sequence) }
            #expect(seen.count == (round + 1) * 20)
        }
        #expect(seen == Array(1...100))
        await journal.close()
    }

    @Test(arguments: ["truncate", "flip-payload", "flip-length", "flip-length-high", "garbage-tail"])
    func tornTailIsTruncatedToLastGoodRecord(damage: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, handler) = makeLogger()
        let config = JournalConfiguration(directory: dir.path + "/journal")
        let journal = try Journal.open(config, logger: logger)
        for i in 0..<20 { _ = try await journal.append(JournalEntry(type: .event, payload: payload(i, size: 64))) }
        await journal.close()

        let path = try lastSegmentPath(config.directory)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let recordSize = 20 + 64
        let lastStart = bytes.count - recordSize
        switch damage {
        case "truncate": bytes.removeLast(30)  // mid-record
        case "flip-payload": bytes[bytes.count - 5] ^= 0xFF
        case "flip-length": bytes[lastStart] ^= 0x40
        case "flip-length-high": bytes[lastStart + 2] ^= 0x01  // declared length runs past the end
        default: bytes += [0xDE, 0xAD, 0xBE, 0xEF, 0x01]  // a partial header after the last record
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let expectedLast: UInt64 = damage == "garbage-tail" ? 20 : 19
        let expectedEnd = damage == "garbage-tail" ? bytes.count - 5 : lastStart

        #expect(try JournalVerifier.verify(directory: config.directory).isIntact == false)
        let reopened = try Journal.open(config, logger: logger)
        #expect(reopened.durable.lastSequence == expectedLast)
        let warnings = handler.messages.filter { $0.level == .warning }
        #expect(warnings.count == 1)
        #expect(warnings.first?.metadata["segment"] == .string((path as NSString).lastPathComponent))
        #expect(warnings.first?.metadata["offset"] == .string("\(expectedEnd)"))
        // The cut bytes are kept beside the segment, not destroyed.
        #expect(FileManager.default.fileExists(atPath: "\(path).torn-\(expectedEnd)"))
        // Appends continue right after the last good record.
        #expect(try await reopened.append(JournalEntry(type: .event, payload: payload(99, size: 64))) == expectedLast + 1)
        await reopened.close()
        let records = try readAll(config.directory)
        #expect(records.map(\.sequence) == Array(1...(expectedLast + 1)))
        #expect(records.last?.payload == payload(99, size: 64))
        #expect(try JournalVerifier.verify(directory: config.directory).isIntact)
    }

    @Test(arguments: ["flip-payload", "flip-length-high", "zero-block"])
    func damageToAnAcknowledgedCommitIsRefusedNotTruncated(damage: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let config = JournalConfiguration(directory: dir.path + "/journal")
        let journal = try Journal.open(config, logger: logger)
        // One commit per record: record 3 was synced before record 4 was written.
        for i in 0..<10 { _ = try await journal.append(JournalEntry(type: .event, payload: payload(i, size: 64))) }
        await journal.close()
        let path = try lastSegmentPath(config.directory)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let third = 20 + 2 * 84
        switch damage {
        case "flip-payload": bytes[third + 30] ^= 0x01
        case "flip-length-high": bytes[third + 2] ^= 0x01
        default: for i in third..<(third + 100) { bytes[i] = 0 }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let sizeBefore = bytes.count

        let refused = #expect(throws: JournalError.self) { try Journal.open(config, logger: logger) }
        #expect(refused?.code == .corrupt)
        // Nothing was cut away.
        #expect((try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) == sizeBefore)
        let report = try JournalVerifier.verify(directory: config.directory)
        #expect(report.segments.first?.problem?.offset == UInt64(third))
        #expect(report.segments.first?.records == 2)
    }

    @Test func damageInsideTheLastCommitIsATornWrite() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let config = JournalConfiguration(directory: dir.path + "/journal")
        let journal = try Journal.open(config, logger: logger)
        _ = try await journal.append(JournalEntry(type: .event, payload: payload(0, size: 64)))
        // One commit of nine records; a crash can persist its pages in any order.
        _ = try await journal.append((1..<10).map { JournalEntry(type: .event, payload: payload($0, size: 64)) })
        await journal.close()
        let path = try lastSegmentPath(config.directory)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let third = 20 + 2 * 84
        for i in third..<(third + 84) { bytes[i] = 0 }  // record 3 never reached the disk; 4…10 did
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let reopened = try Journal.open(config, logger: logger)
        #expect(reopened.durable.lastSequence == 2, "the unacknowledged commit is cut at its first damaged record")
        await reopened.close()
        #expect(FileManager.default.fileExists(atPath: "\(path).torn-\(third)"))
        #expect(try JournalVerifier.verify(directory: config.directory).isIntact)
    }

    @Test func recordsOver16MiBDoNotCorruptTheNextWrite() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let config = JournalConfiguration(directory: dir.path + "/journal")
        let journal = try Journal.open(config, logger: logger)
        let big = [UInt8](repeating: 7, count: 16 << 20)
        #expect(try await journal.append(JournalEntry(type: .event, payload: big)) == 1)
        #expect(try await journal.append(JournalEntry(type: .event, payload: payload(2))) == 2)
        await journal.close()
        let reopened = try Journal.open(config, logger: logger)
        #expect(reopened.durable.lastSequence == 2)
        await reopened.close()
        let records = try readAll(config.directory)
        #expect(records.map(\.sequence) == [1, 2])
        #expect(records.first?.payload == big)
        #expect(records.last?.payload == payload(2))
    }

    @Test func readerNeverReadsASegmentPastTheDurableEnd() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let config = JournalConfiguration(directory: dir.path + "/journal", segmentSize: 1024)
        let journal = try Journal.open(config, logger: logger)
        for i in 0..<40 { _ = try await journal.append(JournalEntry(type: .event, payload: payload(i, size: 100))) }
        await journal.close()
        let bases = try JournalRecovery.segmentBases(in: config.directory)
        #expect(bases.count >= 3)
        // A durable end inside the first segment: later segments must stay unread.
        let bound = JournalPosition(segment: bases[0], offset: UInt64(20 + 3 * 120))
        let reader = JournalReader(directory: config.directory, from: 1, limit: { bound })
        var seen: [UInt64] = []
        while let record = try reader.next() { seen.append(record.sequence) }
        #expect(seen == [1, 2, 3])
        // Even a reader asked to start in a later segment sees nothing past the bound.
        let ahead = JournalReader(directory: config.directory, from: bases[1], limit: { bound })
        #expect(try ahead.next() == nil)
    }

    @Test func failedFdatasyncIsNeverAcknowledged() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let faults = FaultyFileSystem()
        let config = JournalConfiguration(directory: dir.path + "/journal", fileSystem: faults)
        let journal = try Journal.open(config, logger: logger)
        #expect(try await journal.append(JournalEntry(type: .event, payload: payload(1))) == 1)

        // One failed sync: the batch is refused and rolled back, and writing goes on.
        faults.failSyncs(EIO, times: 1)
        let failedSync = await #expect(throws: JournalError.self) { try await journal.append(JournalEntry(type: .event, payload: payload(2))) }
        #expect(failedSync?.code == .io && failedSync?.errno == EIO)
        #expect(journal.durable.lastSequence == 1)
        #expect(try await journal.append(JournalEntry(type: .event, payload: payload(3))) == 2)

        // Syncs that keep failing, so even the rollback cannot be made durable: the journal
        // refuses every write until it is reopened, rather than guess what is on disk.
        faults.failSyncs(EIO)
        let failedRollback = await #expect(throws: JournalError.self) { try await journal.append(JournalEntry(type: .event, payload: payload(4))) }
        #expect(failedRollback?.code == .io && failedRollback?.errno == EIO)
        faults.failSyncs(nil)
        do {
            _ = try await journal.append(JournalEntry(type: .event, payload: payload(5)))
            Issue.record("a journal whose rollback failed accepted a write")
        } catch let error as JournalError {
            #expect(error.code == .unavailable)
        }
        await journal.close()
        let reopened = try Journal.open(config, logger: logger)
        #expect(reopened.durable.lastSequence == 2)
        #expect(try await reopened.append(JournalEntry(type: .event, payload: payload(6))) == 3)
        await reopened.close()
        #expect(try readAll(config.directory).map(\.payload) == [payload(1), payload(3), payload(6)])
    }

    @Test func aFullWriteQueueAnswersOverloadedAtOnce() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let faults = FaultyFileSystem()
        let journal = try Journal.open(JournalConfiguration(directory: dir.path + "/journal", maxQueuedBytes: 1000, fileSystem: faults), logger: logger)
        // The disk stalls: the first append's commit stays in its fdatasync until released, so
        // its 620 bytes are still queued when the second append comes, however busy the machine.
        faults.holdSyncs()
        defer { faults.releaseSyncs() }
        let syncsBefore = faults.syncsStarted
        let first = Task { try await journal.append(JournalEntry(type: .event, payload: payload(1, size: 600))) }
        let deadline = ContinuousClock.now + .seconds(30)
        while faults.syncsStarted == syncsBefore, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        try #require(faults.syncsStarted > syncsBefore, "the first append never reached its fdatasync")
        // 620 more bytes would pass the 1000-byte bound: refused while the first is still held,
        // so the refusal did not wait for the queue to drain.
        let refused = await #expect(throws: JournalError.self) { try await journal.append(JournalEntry(type: .event, payload: payload(2, size: 600))) }
        #expect(refused?.code == .overloaded)
        #expect(journal.durable.lastSequence == 0, "the first commit was still held when the second was refused")
        faults.releaseSyncs()
        #expect(try await first.value == 1)
        // Drained: the queue takes writes again, and one record larger than the whole bound is
        // still written when nothing else is waiting (the bound limits waiting, not record size).
        #expect(try await journal.append(JournalEntry(type: .event, payload: payload(3, size: 600))) == 2)
        #expect(try await journal.append(JournalEntry(type: .event, payload: payload(4, size: 1200))) == 3)
        await journal.close()
    }

    @Test func failedWriteIsNeverAcknowledgedAndJournalRecovers() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let faults = FaultyFileSystem()
        let config = JournalConfiguration(directory: dir.path + "/journal", fileSystem: faults)
        let journal = try Journal.open(config, logger: logger)
        #expect(try await journal.append(JournalEntry(type: .event, payload: payload(1))) == 1)

        faults.failWrites(ENOSPC, partialWrite: true)
        let full = await #expect(throws: JournalError.self) { try await journal.append(JournalEntry(type: .event, payload: payload(2))) }
        #expect(full?.code == .io && full?.errno == ENOSPC)
        #expect(journal.durable.lastSequence == 1)

        faults.failWrites(nil)
        // The failed record's sequence is reused: the log has no gap and no half record.
        #expect(try await journal.append(JournalEntry(type: .event, payload: payload(3))) == 2)
        await journal.close()
        let records = try readAll(config.directory)
        #expect(records.map(\.payload) == [payload(1), payload(3)])
        #expect(try JournalVerifier.verify(directory: config.directory).isIntact)
    }

    /// (The full queue is `aFullWriteQueueAnswersOverloadedAtOnce`.)
    @Test func anOversizedRecordIsRefusedAndNothingIsWritten() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (logger, _) = makeLogger()
        let journal = try Journal.open(JournalConfiguration(directory: dir.path + "/journal", maxRecordSize: 1000), logger: logger)
        let tooLarge = await #expect(throws: JournalError.self) { try await journal.append(JournalEntry(type: .event, payload: [UInt8](repeating: 1, count: 1001))) }
        #expect(tooLarge?.code == .recordTooLarge)
        #expect(journal.durable.lastSequence == 0)
        #expect(try await journal.append(JournalEntry(type: .event, payload: [UInt8](repeating: 1, count: 1000))) == 1)
        await journal.close()
    }
}
