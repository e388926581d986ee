import Foundation
import Logging
@testable import RelayCore
@testable import RelayJournal
import RelayTesting
import Testing

/// The journal's memory of its last commits: what the delivery tail and the senders read
/// instead of the disk, so it must be exactly what is on disk, and bounded.
@Suite struct RecentRecordsTests {
    @Test func recentRecordsAreExactlyWhatIsOnDiskAndBounded() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var configuration = JournalConfiguration(directory: directory.path, segmentSize: 16 << 10)
        configuration.recentRecordBytes = 20 * (200 + 64)  // about 20 records of 200 bytes
        let journal = try Journal.open(configuration, logger: Logger(label: "test"))
        for batch in 0..<30 {
            let entries = (0..<3).map { JournalEntry(type: .event, payload: payload(batch * 3 + $0, size: 200)) }
            _ = try await journal.append(entries)
        }
        var onDisk: [JournalRecord] = []
        let reader = journal.reader(from: 1)
        while let record = try reader.next() { onDisk.append(record) }
        #expect(onDisk.count == 90)

        // The last 20 are held, in order, with their sequence, type, payload and position.
        let recent = try #require(journal.recentRecords(after: 70, limit: 100))
        #expect(recent.map(\.sequence) == Array(71...90))
        for (held, disk) in zip(recent, onDisk[70...]) {
            #expect(held.payload == disk.payload && held.type == disk.type && held.position == disk.position)
            #expect(try journal.read(at: disk.position).payload == disk.payload)
            #expect(journal.recentRecord(at: disk.position)?.sequence == disk.sequence)
        }
        #expect(journal.recentRecords(after: 85, limit: 2)?.map(\.sequence) == [86, 87])
        #expect(journal.recentRecords(after: 90, limit: 10)?.isEmpty == true, "caught up: nothing new")
        // Older ones are no longer held: the caller reads them from disk.
        #expect(journal.recentRecords(after: 10, limit: 10) == nil)
        #expect(journal.recentRecord(at: onDisk[10].position) == nil)
        #expect(try journal.read(at: onDisk[10].position).payload == onDisk[10].payload)
        await journal.close()
    }

    @Test func aFailedWriteIsNotHeld() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let faults = FaultyFileSystem()
        let journal = try Journal.open(JournalConfiguration(directory: directory.path, fileSystem: faults), logger: Logger(label: "test"))
        _ = try await journal.append([JournalEntry(type: .event, payload: payload(1))])
        faults.failWrites(EIO)  // rolled back: the journal goes on writing
        await #expect(throws: (any Error).self) { try await journal.append([JournalEntry(type: .event, payload: payload(2))]) }
        faults.failWrites(nil)
        #expect(journal.recentRecords(after: 1, limit: 10)?.isEmpty == true, "the failed record was held")
        _ = try await journal.append([JournalEntry(type: .event, payload: payload(3))])
        let held = try #require(journal.recentRecords(after: 0, limit: 10))
        #expect(held.map(\.payload) == [payload(1), payload(3)])
        #expect(held.map(\.sequence) == [1, 2])
        await journal.close()
    }
}
