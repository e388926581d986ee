/// The outcome of one delivery attempt: a `.deliveryAttempt` journal record. Replaying these
/// records rebuilds every unfinished delivery after a restart.
public struct DeliveryRecord: Sendable, Equatable {
    public enum Outcome: UInt8, Sendable {
        case succeeded = 1
        /// Failed; try again at `nextDue`.
        case retry = 2
        /// Given up (permanent failure, max_attempts or max_age).
        case dead = 3
    }

    /// The journal sequence of the delivered event: with `destination`, identifies the delivery.
    public var eventSequence: UInt64
    public var eventID: String
    public var destination: String
    /// 1 for the first attempt.
    public var attempt: Int
    public var time: Timestamp
    public var outcome: Outcome
    /// The HTTP status, 0 if no response (connection error, timeout).
    public var status: Int
    /// The transport error or the reason for giving up; empty on success.
    public var error: String
    public var durationMillis: Int
    /// When the next attempt is due (for `.retry`).
    public var nextDue: Timestamp?
    /// A 410 paused the destination.
    public var pausedDestination: Bool
    /// The replay this attempt belongs to; empty for the event's own delivery.
    public var replayID: String

    public init(
        eventSequence: UInt64, eventID: String, destination: String, attempt: Int, time: Timestamp, outcome: Outcome,
        status: Int, error: String, durationMillis: Int, nextDue: Timestamp?, pausedDestination: Bool = false, replayID: String = ""
    ) {
        self.replayID = replayID
        self.eventSequence = eventSequence
        self.eventID = eventID
        self.destination = destination
        self.attempt = attempt
        self.time = time
        self.outcome = outcome
        self.status = status
        self.error = error
        self.durationMillis = durationMillis
        self.nextDue = nextDue
        self.pausedDestination = pausedDestination
    }

    /// Version 2 appends the replay id; version 1 records (no replay id) are still read.
    static let encodingVersion: UInt8 = 2

    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 96 + error.utf8.count)
        writer.write(Self.encodingVersion)
        writer.write(eventSequence)
        writer.write(eventID)
        writer.write(destination)
        writer.write(UInt32(clamping: attempt))
        writer.write(time.milliseconds)
        writer.write(outcome.rawValue)
        writer.write(Int32(clamping: status))
        writer.write(error)
        writer.write(UInt32(clamping: durationMillis))
        writer.write(nextDue?.milliseconds ?? -1)
        writer.write(pausedDestination)
        writer.write(replayID)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws {
        var reader = ByteReader(payload)
        let version: UInt8 = try reader.read()
        guard version == 1 || version == Self.encodingVersion else { throw ByteReader.Error(description: "unknown delivery record version \(version)") }
        eventSequence = try reader.read()
        eventID = try reader.readString()
        destination = try reader.readString()
        attempt = Int(try reader.read(UInt32.self))
        time = Timestamp(milliseconds: try reader.read())
        guard let outcome = Outcome(rawValue: try reader.read()) else { throw ByteReader.Error(description: "unknown delivery outcome") }
        self.outcome = outcome
        status = Int(try reader.read(Int32.self))
        error = try reader.readString()
        durationMillis = Int(try reader.read(UInt32.self))
        let due: Int64 = try reader.read()
        nextDue = due >= 0 ? Timestamp(milliseconds: due) : nil
        pausedDestination = try reader.readBool()
        replayID = version >= 2 ? try reader.readString() : ""
    }

}
