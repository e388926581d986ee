import RelayCore

/// A `.keyReleased` journal record: an operator skipped the dead delivery that held its
/// ordering key (`on_dead: hold`), so the key's later deliveries move on. The delivery stays
/// dead. Read back at start-up, so the release holds across restarts.
struct KeyRelease: Equatable {
    var eventSequence: UInt64
    var eventID: String
    var destination: String
    var time: Timestamp

    static let encodingVersion: UInt8 = 1

    var journalEntry: JournalEntry {
        var writer = ByteWriter(capacity: 48 + eventID.utf8.count + destination.utf8.count)
        writer.write(Self.encodingVersion)
        writer.write(eventSequence)
        writer.write(eventID)
        writer.write(destination)
        writer.write(time.milliseconds)
        return JournalEntry(type: .keyReleased, payload: writer.bytes)
    }

    init(eventSequence: UInt64, eventID: String, destination: String, time: Timestamp) {
        (self.eventSequence, self.eventID, self.destination, self.time) = (eventSequence, eventID, destination, time)
    }

    init(decoding payload: [UInt8]) throws {
        var reader = ByteReader(payload)
        let version: UInt8 = try reader.read()
        guard version == Self.encodingVersion else { throw CheckpointError("unknown key release version \(version)") }
        eventSequence = try reader.read()
        eventID = try reader.readString()
        destination = try reader.readString()
        time = Timestamp(milliseconds: try reader.read())
    }
}
