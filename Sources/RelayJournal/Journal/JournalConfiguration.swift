import RelayCore
/// How a journal is laid out and how much it may buffer.
public struct JournalConfiguration: Sendable {
    /// The folder holding the segment files (`DATA/journal`).
    public var directory: String
    /// A new segment is started once the current one reaches this size. Default 64 MiB.
    public var segmentSize: UInt64
    /// The largest record payload accepted. Default 16 MiB.
    public var maxRecordSize: Int
    /// The most bytes written (and synced) in one group commit. Default 4 MiB.
    public var maxBatchBytes: Int
    /// The most bytes waiting to be written; an append beyond it fails at once with
    /// `.overloaded` instead of queueing without bound. Default 64 MiB.
    public var maxQueuedBytes: Int
    /// The most payload bytes of the last commits kept in memory, so that the delivery engine
    /// and its senders get fresh records without reading them back from disk. Default 8 MiB;
    /// 0 reads everything from disk.
    public var recentRecordBytes: Int = 8 << 20
    /// Where writes go; tests inject failures here.
    public var fileSystem: any JournalFileSystem
    /// Told, on the writer thread, the records and the write-and-sync time of every group commit
    /// (metrics). Must be quick.
    public var commitObserver: (@Sendable (_ records: Int, _ duration: Duration) -> Void)?

    public init(
        directory: String,
        segmentSize: UInt64 = 64 << 20,
        maxRecordSize: Int = 16 << 20,
        maxBatchBytes: Int = 4 << 20,
        maxQueuedBytes: Int = 64 << 20,
        fileSystem: any JournalFileSystem = POSIXJournalFileSystem()
    ) {
        self.directory = directory
        self.segmentSize = segmentSize
        self.maxRecordSize = maxRecordSize
        self.maxBatchBytes = maxBatchBytes
        self.maxQueuedBytes = maxQueuedBytes
        self.fileSystem = fileSystem
    }
}
