import RelayCore

extension Event {
    /// This event as a journal record.
    public var journalEntry: JournalEntry { JournalEntry(type: .event, payload: encoded()) }
}

extension RoutingDecision {
    /// This decision as a journal record (right after its event's).
    public var journalEntry: JournalEntry { JournalEntry(type: .routingDecision, payload: encoded()) }
}

extension DeliveryRecord {
    /// This attempt as a journal record.
    public var journalEntry: JournalEntry { JournalEntry(type: .deliveryAttempt, payload: encoded()) }
}
