import Foundation

/// The loaded, validated `routes.json`: sources, destinations and compiled routes.
public struct RelayConfig: Sendable {
    public var sources: [String: SourceConfig]
    public var destinations: [String: DestinationConfig] {
        didSet { routing = routing.ordering(destinations) }
    }
    /// The routes; its decisions record the ordering keys of `destinations` (kept in step).
    public var routing: RoutingTable {
        didSet { if routing.orderings != destinations.compactMapValues(\.ordering) { routing = routing.ordering(destinations) } }
    }
    /// The first 12 hex digits of the file's SHA-256: recorded with every routing decision.
    public var version: String { routing.version }

    public init(sources: [String: SourceConfig], destinations: [String: DestinationConfig] = [:], routing: RoutingTable = RoutingTable(version: "none", routes: [])) {
        self.sources = sources
        self.destinations = destinations
        self.routing = routing.ordering(destinations)
    }

    /// Reads and validates a config file. Throws `ConfigError` listing every problem.
    /// With `lenientSecrets`, a missing environment variable is not an error (its value is
    /// empty): for tools that never verify a signature, such as `relay routes test`.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment, lenientSecrets: Bool = false) throws -> RelayConfig {
        let fileName = (path as NSString).lastPathComponent
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(issues: [ConfigIssue(file: fileName, path: "", message: "cannot read the file at \(path)")])
        }
        return try parse(Array(data), file: fileName, environment: environment, lenientSecrets: lenientSecrets)
    }

    /// Validates a config document. Throws `ConfigError` listing every problem.
    public static func parse(_ bytes: [UInt8], file: String, environment: [String: String], lenientSecrets: Bool = false) throws -> RelayConfig {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw ConfigError(issues: [ConfigIssue(file: file, path: "", message: "not valid JSON: \(error)")])
        }
        var reader = ConfigReader(file: file, environment: environment, lenientSecrets: lenientSecrets)
        guard reader.object(document, "", allowed: ["sources", "destinations", "routes"]) != nil else {
            throw ConfigError(issues: reader.issues)
        }
        var sources: [String: SourceConfig] = [:]
        if let sourcesValue = document["sources"] {
            for member in reader.object(sourcesValue, "sources", allowed: Set(sourcesValue.objectValue?.map(\.key) ?? [])) ?? [] {
                if let source = parseSource(name: member.key, member.value, &reader) {
                    sources[member.key] = source
                }
            }
            if sourcesValue.objectValue?.isEmpty == true { reader.fail("sources", "must declare at least one source") }
        } else {
            reader.fail("sources", "is required (at least one source)")
        }
        var destinations: [String: DestinationConfig] = [:]
        let destinationNames = Set(document["destinations"]?.objectValue?.map(\.key) ?? [])
        if let value = document["destinations"] {
            for member in reader.object(value, "destinations", allowed: destinationNames) ?? [] {
                if let destination = DestinationConfig.parse(name: member.key, member.value, &reader) {
                    destinations[member.key] = destination
                }
            }
        }
        // Read from the file, not the parsed sources: a Runa source whose reconcile block has an
        // error of its own is reported there, not again here.
        let runaReconciles = document["sources"]?.objectValue?.contains { $0.value["provider"]?.stringValue == "runa" && $0.value["reconcile"] != nil } ?? false
        if !runaReconciles {
            for destination in destinations.values.sorted(by: { $0.name < $1.name }) where destination.enrich == .runaOrder {
                reader.fail("destinations.\(destination.name).enrich", "runa-order needs a runa source with a reconcile block (its api_key fetches the order)")
            }
        }
        var routes: [Route] = []
        if let value = document["routes"] {
            if let items = value.arrayValue {
                var names = Set<String>()
                let sourceNames = Set(document["sources"]?.objectValue?.map(\.key) ?? [])
                for (index, item) in items.enumerated() {
                    if let route = Route.parse(index: index, item, sources: sourceNames, destinations: destinationNames, names: &names, &reader) {
                        routes.append(route)
                    }
                }
            } else {
                reader.fail("routes", "must be an array of routes, not \(value.kindName)")
            }
        }
        guard reader.issues.isEmpty else { throw ConfigError(issues: reader.issues) }
        let version = String(Digest.sha256Hex(bytes).prefix(12))
        return RelayConfig(sources: sources, destinations: destinations, routing: RoutingTable(version: version, routes: routes))
    }

    static func parseSource(name: String, _ value: JSONValue, _ reader: inout ConfigReader) -> SourceConfig? {
        let path = "sources.\(name)"
        let issuesBefore = reader.issues.count
        guard reader.object(value, path, allowed: ["provider", "secret", "signature", "fields", "max_body_bytes", "timestamp_tolerance", "reconcile"]) != nil else {
            return nil
        }
        if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            reader.fail(path, "source names may use only letters, digits, '-' and '_'")
        }
        var provider = ProviderKind.generic
        if let text = reader.string(value["provider"], "\(path).provider") {
            if let kind = ProviderKind(rawValue: text) {
                provider = kind
            } else {
                reader.fail("\(path).provider", "unknown provider \(JSONWriter.quote(text)) (known: runa, fastspring, generic)")
            }
        } else if value["provider"] == nil {
            reader.fail("\(path).provider", "is required")
        }

        var secrets: [Secret] = []
        for (index, text) in (reader.strings(value["secret"], "\(path).secret") ?? []).enumerated() {
            let secretPath = value["secret"]?.arrayValue == nil ? "\(path).secret" : "\(path).secret[\(index)]"
            if let secret = reader.secretValue(text, secretPath) { secrets.append(secret) }
        }

        var signature = SignatureConfig(scheme: .none)
        switch provider {
        case .runa:
            signature = SignatureConfig(scheme: .standardWebhooks)
        case .fastspring:
            signature = SignatureConfig(scheme: .hmacSHA256, header: "X-FS-Signature", encoding: .base64)
        case .generic:
            break
        }
        if let signatureValue = value["signature"] {
            let signaturePath = "\(path).signature"
            if provider != .generic {
                reader.fail(signaturePath, "only generic sources take a signature block (\(provider.rawValue) signs its own way)")
            } else if reader.object(signatureValue, signaturePath, allowed: ["scheme", "header", "encoding", "prefix", "tolerance"]) != nil {
                if let text = reader.string(signatureValue["scheme"], "\(signaturePath).scheme") {
                    if let scheme = SignatureConfig.Scheme(rawValue: text) {
                        signature.scheme = scheme
                    } else {
                        reader.fail("\(signaturePath).scheme", "unknown scheme \(JSONWriter.quote(text)) (known: \(SignatureConfig.Scheme.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                } else if signatureValue["scheme"] == nil {
                    reader.fail("\(signaturePath).scheme", "is required")
                }
                if let header = reader.string(signatureValue["header"], "\(signaturePath).header") { signature.header = header }
                if let text = reader.string(signatureValue["encoding"], "\(signaturePath).encoding") {
                    if let encoding = SignatureConfig.Encoding(rawValue: text) {
                        signature.encoding = encoding
                    } else {
                        reader.fail("\(signaturePath).encoding", "unknown encoding \(JSONWriter.quote(text)) (known: hex, base64)")
                    }
                }
                if let prefix = reader.string(signatureValue["prefix"], "\(signaturePath).prefix") { signature.prefix = prefix }
                if let tolerance = reader.duration(signatureValue["tolerance"], "\(signaturePath).tolerance") { signature.toleranceMillis = tolerance }
                if signature.scheme == .hmacSHA256 && signature.header.isEmpty {
                    reader.fail("\(signaturePath).header", "is required for hmac-sha256")
                }
            }
        } else if provider == .generic && value["secret"] != nil {
            reader.fail("\(path).signature", "is required when a generic source has a secret (or remove the secret and accept unsigned requests)")
        }
        if let tolerance = reader.duration(value["timestamp_tolerance"], "\(path).timestamp_tolerance") {
            signature.toleranceMillis = tolerance
        }
        if signature.scheme == .standardWebhooks {
            for (index, secret) in secrets.enumerated() where Signatures.standardWebhooksKey(secret.value) == nil {
                let secretPath = value["secret"]?.arrayValue == nil ? "\(path).secret" : "\(path).secret[\(index)]"
                reader.fail(secretPath, "the secret from \(secret.origin) is not a Standard Webhooks secret (whsec_ followed by base64)")
            }
        }
        if let list = value["secret"]?.arrayValue, list.isEmpty {
            reader.fail("\(path).secret", "must list at least one secret")
        }
        if signature.scheme != .none && value["secret"] == nil {
            reader.fail("\(path).secret", "is required for \(provider == .generic ? signature.scheme.rawValue + " signatures" : provider.rawValue)")
        }

        var fields = FieldPointers()
        if let fieldsValue = value["fields"] {
            let fieldsPath = "\(path).fields"
            if provider != .generic {
                reader.fail(fieldsPath, "only generic sources take fields (\(provider.rawValue) fields are built in)")
            } else if reader.object(fieldsValue, fieldsPath, allowed: ["id", "type", "status", "product", "order_id"]) != nil {
                func pointer(_ key: String, _ reader: inout ConfigReader) -> String? {
                    guard let text = reader.string(fieldsValue[key], "\(fieldsPath).\(key)") else { return nil }
                    guard text.isEmpty || text.hasPrefix("/") else {
                        reader.fail("\(fieldsPath).\(key)", "must be a JSON Pointer starting with '/', not \(JSONWriter.quote(text))")
                        return nil
                    }
                    return text
                }
                fields = FieldPointers(
                    id: pointer("id", &reader), type: pointer("type", &reader), status: pointer("status", &reader),
                    product: pointer("product", &reader), orderID: pointer("order_id", &reader)
                )
            }
        }
        var maxBody = SourceConfig.defaultMaxBodyBytes
        if let limit = reader.integer(value["max_body_bytes"], "\(path).max_body_bytes", minimum: 1) {
            if limit > SourceConfig.maximumBodyBytes {
                reader.fail("\(path).max_body_bytes", "must be at most \(SourceConfig.maximumBodyBytes) (8 MiB), not \(limit)")
            }
            maxBody = limit
        }
        let reconcile = value["reconcile"].flatMap { ReconcileConfig.parse($0, "\(path).reconcile", provider: provider, &reader) }
        guard reader.issues.count == issuesBefore else { return nil }
        var source = SourceConfig(name: name, provider: provider, secrets: secrets, signature: signature, fields: fields, maxBodyBytes: maxBody)
        source.reconcile = reconcile
        return source
    }
}
