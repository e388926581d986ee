import RelayCore
/// The type of a journal record. An open space: new types are added as the relay grows, and a
/// reader skips types it does not know.
public struct JournalRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// A received, normalized event (`EventRecord`).
    public static let event = JournalRecordType(rawValue: 1)
    /// Reserved: which routes and destinations an event went to, and the config version.
    public static let routingDecision = JournalRecordType(rawValue: 2)
    /// Reserved: the outcome of one delivery attempt.
    public static let deliveryAttempt = JournalRecordType(rawValue: 3)
    /// Reserved: a snapshot of delivery state so start-up need not read the whole history.
    public static let checkpoint = JournalRecordType(rawValue: 4)
    /// No state: appended by retention so that, once it is durable, every record queued before
    /// it is durable too.
    public static let barrier = JournalRecordType(rawValue: 5)
    /// An operator skipped a dead delivery that held its ordering key (`KeyRelease`).
    public static let keyReleased = JournalRecordType(rawValue: 6)

    public var description: String {
        switch self {
        case .event: "event"
        case .routingDecision: "routing-decision"
        case .deliveryAttempt: "delivery-attempt"
        case .checkpoint: "checkpoint"
        case .barrier: "barrier"
        case .keyReleased: "key-released"
        default: "type-\(rawValue)"
        }
    }
}

/// A record to append: its type and its payload bytes.
public struct JournalEntry: Sendable {
    public var type: JournalRecordType
    public var payload: [UInt8]

    public init(type: JournalRecordType, payload: [UInt8]) {
        self.type = type
        self.payload = payload
    }
}

/// A record read back from the journal.
public struct JournalRecord: Sendable {
    /// The record's sequence number: 1 for the first record ever written, then +1 for each.
    public var sequence: UInt64
    public var type: JournalRecordType
    public var payload: [UInt8]
    /// Where the record starts.
    public var position: JournalPosition
}

/// A place in the journal: a segment (named by its first sequence number) and a byte offset.
public struct JournalPosition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var segment: UInt64
    public var offset: UInt64

    public init(segment: UInt64, offset: UInt64) {
        self.segment = segment
        self.offset = offset
    }

    public static func < (lhs: JournalPosition, rhs: JournalPosition) -> Bool {
        (lhs.segment, lhs.offset) < (rhs.segment, rhs.offset)
    }

    public var description: String { "\(JournalFormat.segmentName(base: segment))@\(offset)" }
}

extension JournalPosition {
    /// The position an event reference of the journal's carries.
    public init(_ locator: EventReference.Locator) {
        self.init(segment: locator.high, offset: locator.low)
    }

    /// This position as an event reference's locator.
    public var locator: EventReference.Locator { EventReference.Locator(high: segment, low: offset) }
}
