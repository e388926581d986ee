import RelayCore
import RelayForwarder

/// Where the relay listens and keeps its data.
public struct RelayServerConfiguration: Sendable {
    /// A host and port to listen on.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `HOST:PORT` (`[::1]:8080` for IPv6).
        public init?(parsing text: String) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
                return nil
            }
            var host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public var configPath: String
    public var dataDirectory: String
    public var listen: Address
    public var adminListen: Address
    /// Journal tuning; `directory` is filled in from `dataDirectory`.
    public var journal: JournalConfiguration
    /// Delivery tuning (breaker threshold, drain time, in-memory window per destination).
    public var scheduler: DeliveryScheduler.Configuration

    public init(
        configPath: String,
        dataDirectory: String,
        listen: Address = Address(host: "127.0.0.1", port: 8080),
        adminListen: Address = Address(host: "127.0.0.1", port: 8081),
        journal: JournalConfiguration? = nil,
        scheduler: DeliveryScheduler.Configuration = DeliveryScheduler.Configuration()
    ) {
        self.configPath = configPath
        self.dataDirectory = dataDirectory
        self.listen = listen
        self.adminListen = adminListen
        self.journal = journal ?? JournalConfiguration(directory: dataDirectory + "/journal")
        self.scheduler = scheduler
    }
}
