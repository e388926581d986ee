import RelayCore
import RelayJournal
import RelayPostgres
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

        /// Whether only this machine can reach it (127.0.0.0/8, ::1, localhost).
        public var isLoopback: Bool {
            host == "localhost" || host == "::1" || host.hasPrefix("127.")
        }
    }

    public var configPath: String
    public var dataDirectory: String
    public var listen: Address
    public var adminListen: Address
    /// Journal tuning; `directory` is filled in from `dataDirectory`.
    public var journal: JournalConfiguration
    /// Delivery tuning (breaker threshold, drain time, in-memory window per destination).
    public var scheduler: DeliveryScheduler.Configuration
    /// When set, every admin request needs `Authorization: Bearer <token>` (`RELAY_ADMIN_TOKEN`).
    /// Without it the admin listener may bind only to a loopback address.
    public var adminToken: String?
    /// A connection that sends no part of a request for this long is closed: a client that
    /// trickles a header (or stalls a body) cannot hold a connection forever. Also the
    /// keep-alive idle limit between requests.
    public var idleTimeout: Duration
    /// An ingest request's whole body must arrive within this long, else 408 and the
    /// connection is closed: a body dribbled a byte at a time keeps the connection active, so
    /// the idle timeout alone would not end it.
    public var bodyTimeout: Duration
    /// Journal segments whose events are all older than this, and that nothing unfinished
    /// needs, are deleted (`--retention`, default 30 days); 0 keeps everything.
    public var retentionMillis: Int64
    /// Where events, deliveries and attempts are kept.
    public var store: Store
    /// How long start-up waits for the database to answer before giving up.
    public var storeTimeout: Duration = .seconds(30)

    /// The embedded journal (one instance, the default), or a PostgreSQL database several
    /// instances share (`--store postgres://…`), its tables in `schema`.
    public enum Store: Sendable {
        case journal
        case postgres(PostgresURL, schema: String)
    }

    public init(
        configPath: String,
        dataDirectory: String,
        listen: Address = Address(host: "127.0.0.1", port: 8080),
        adminListen: Address = Address(host: "127.0.0.1", port: 8081),
        journal: JournalConfiguration? = nil,
        scheduler: DeliveryScheduler.Configuration = DeliveryScheduler.Configuration(),
        adminToken: String? = nil,
        idleTimeout: Duration = .seconds(60),
        bodyTimeout: Duration = .seconds(60),
        retentionMillis: Int64 = 30 * 86_400_000,
        store: Store = .journal
    ) {
        self.store = store
        self.retentionMillis = max(0, retentionMillis)
        // A zero or negative timeout would close every connection at once.
        self.idleTimeout = max(idleTimeout, .milliseconds(100))
        self.bodyTimeout = max(bodyTimeout, .milliseconds(100))
        self.adminToken = adminToken.flatMap { $0.isEmpty ? nil : $0 }
        self.configPath = configPath
        self.dataDirectory = dataDirectory
        self.listen = listen
        self.adminListen = adminListen
        self.journal = journal ?? JournalConfiguration(directory: dataDirectory + "/journal")
        self.scheduler = scheduler
    }
}

/// A configuration the relay refuses to start with.
public struct ServerConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension RelayServerConfiguration {
    /// Refuses an admin listener that other machines could reach without a token.
    public func validate() throws {
        if adminToken == nil && !adminListen.isLoopback {
            throw ServerConfigurationError(description: "refusing to listen for admin requests on \(adminListen) without RELAY_ADMIN_TOKEN: set a token, or use a loopback address")
        }
    }
}
