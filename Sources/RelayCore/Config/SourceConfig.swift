/// A provider adapter kind.
public enum ProviderKind: String, Sendable, CaseIterable {
    case runa, fastspring, generic
}

/// How a generic source's requests are signed.
public struct SignatureConfig: Sendable, Equatable {
    public enum Scheme: String, Sendable, CaseIterable {
        case hmacSHA256 = "hmac-sha256"
        case standardWebhooks = "standard-webhooks"
        case stripe
        case none
    }

    public enum Encoding: String, Sendable, CaseIterable {
        case hex, base64
    }

    public var scheme: Scheme
    /// The header holding the signature (hmac-sha256).
    public var header: String
    public var encoding: Encoding
    /// Text before the signature in the header, e.g. GitHub's `sha256=`.
    public var prefix: String
    /// How far a signed timestamp may be from now (standard-webhooks, stripe, runa).
    public var toleranceMillis: Int64

    public init(scheme: Scheme, header: String = "", encoding: Encoding = .hex, prefix: String = "", toleranceMillis: Int64 = 300_000) {
        self.scheme = scheme
        self.header = header
        self.encoding = encoding
        self.prefix = prefix
        self.toleranceMillis = toleranceMillis
    }
}

/// The JSON Pointers a generic source reads its normalized fields from.
public struct FieldPointers: Sendable, Equatable {
    public var id: String?
    public var type: String?
    public var status: String?
    public var product: String?
    public var orderID: String?

    public init(id: String? = nil, type: String? = nil, status: String? = nil, product: String? = nil, orderID: String? = nil) {
        self.id = id
        self.type = type
        self.status = status
        self.product = product
        self.orderID = orderID
    }
}

/// One entry of `sources` in routes.json: where `POST /webhooks/{name}` requests come from.
public struct SourceConfig: Sendable, Equatable {
    public static let defaultMaxBodyBytes = 1 << 20
    /// The largest `max_body_bytes` accepted: well inside the journal's 16 MiB record limit.
    public static let maximumBodyBytes = 8 << 20

    public var name: String
    public var provider: ProviderKind
    /// Any one of these verifies a signature (more than one during rotation).
    public var secrets: [Secret]
    public var signature: SignatureConfig
    public var fields: FieldPointers
    public var maxBodyBytes: Int
    /// Asking the provider's API for missed events (`reconcile`); nil: never.
    public var reconcile: ReconcileConfig?

    public init(
        name: String, provider: ProviderKind, secrets: [Secret] = [],
        signature: SignatureConfig = SignatureConfig(scheme: .none), fields: FieldPointers = FieldPointers(),
        maxBodyBytes: Int = SourceConfig.defaultMaxBodyBytes
    ) {
        self.name = name
        self.provider = provider
        self.secrets = secrets
        self.signature = signature
        self.fields = fields
        self.maxBodyBytes = maxBodyBytes
    }
}
