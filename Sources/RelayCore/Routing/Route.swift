/// One entry of `routes`, compiled: globs and pointers are parsed once at load.
public struct Route: Sendable, Equatable {
    public var name: String
    /// Each field: nil = not constrained; otherwise any of the globs must match (OR).
    public var provider: [Glob]?
    public var source: [Glob]?
    public var type: [Glob]?
    public var status: [Glob]?
    /// Matches if any product of the event matches any glob.
    public var product: [Glob]?
    /// All must hold (AND), tested on the event's JSON payload.
    public var conditions: [WhereCondition]
    public var destinations: [String]

    public init(name: String, provider: [Glob]? = nil, source: [Glob]? = nil, type: [Glob]? = nil, status: [Glob]? = nil, product: [Glob]? = nil, conditions: [WhereCondition] = [], destinations: [String]) {
        self.name = name
        self.provider = provider
        self.source = source
        self.type = type
        self.status = status
        self.product = product
        self.conditions = conditions
        self.destinations = destinations
    }

    /// Whether every given field matches; `payload` is parsed only if a condition needs it.
    func matches(_ event: Event, payload: () -> JSONValue?) -> Bool {
        func any(_ globs: [Glob]?, _ value: String) -> Bool {
            guard let globs else { return true }
            return globs.contains { $0.matches(value) }
        }
        guard any(provider, event.provider), any(source, event.source), any(type, event.type), any(status, event.status) else { return false }
        if let product, !event.products.contains(where: { value in product.contains { $0.matches(value) } }) { return false }
        if conditions.isEmpty { return true }
        guard let document = payload() else { return false }
        return conditions.allSatisfy { $0.holds(in: document) }
    }

    static func parse(index: Int, _ value: JSONValue, sources: Set<String>, destinations: Set<String>, names: inout Set<String>, _ reader: inout ConfigReader) -> Route? {
        let path = "routes[\(index)]"
        let before = reader.issues.count
        guard let members = reader.object(value, path, allowed: ["name", "match", "to"]) else { return nil }
        if members.contains(where: { $0.key == "where" }) {
            reader.fail("\(path).where", "belongs inside match (\"match\": {\"where\": [...]})")
        }
        var route = Route(name: "", destinations: [])
        if let name = reader.string(value["name"], "\(path).name") {
            if name.isEmpty { reader.fail("\(path).name", "must not be empty") }
            if !names.insert(name).inserted { reader.fail("\(path).name", "duplicate route name \(JSONWriter.quote(name))") }
            route.name = name
        } else if value["name"] == nil {
            reader.fail("\(path).name", "is required")
        }
        let match = value["match"] ?? .object([])
        if reader.object(match, "\(path).match", allowed: ["provider", "source", "type", "status", "product", "where"]) != nil {
            func globs(_ key: String, known: Set<String>? = nil, _ reader: inout ConfigReader) -> [Glob]? {
                guard let patterns = reader.strings(match[key], "\(path).match.\(key)") else { return nil }
                let isArray = match[key]?.arrayValue != nil
                if isArray && patterns.isEmpty { reader.fail("\(path).match.\(key)", "must not be an empty array (it would match nothing)") }
                var compiled: [Glob] = []
                for (i, pattern) in patterns.enumerated() {
                    let itemPath = isArray ? "\(path).match.\(key)[\(i)]" : "\(path).match.\(key)"
                    do {
                        let glob = try Glob(pattern)
                        // An exact name that is not configured is a typo: it would never match.
                        if let known, case .exact(let exact) = glob.shape, !known.contains(exact) {
                            reader.fail(itemPath, "unknown \(key) \(JSONWriter.quote(exact)) (known: \(known.sorted().joined(separator: ", ")))")
                        }
                        compiled.append(glob)
                    } catch {
                        reader.fail(itemPath, "bad glob \(JSONWriter.quote(pattern)): \(error.message)")
                    }
                }
                return compiled
            }
            route.provider = globs("provider", known: Set(ProviderKind.allCases.map(\.rawValue)), &reader)
            route.source = globs("source", known: sources, &reader)
            route.type = globs("type", &reader)
            route.status = globs("status", &reader)
            route.product = globs("product", &reader)
            if let conditions = match["where"] {
                if let items = conditions.arrayValue {
                    for (i, item) in items.enumerated() {
                        if let condition = WhereCondition.parse(item, "\(path).match.where[\(i)]", &reader) { route.conditions.append(condition) }
                    }
                } else {
                    reader.fail("\(path).match.where", "must be an array of conditions, not \(conditions.kindName)")
                }
            }
        }
        if let targets = value["to"] {
            if let items = targets.arrayValue {
                if items.isEmpty { reader.fail("\(path).to", "must name at least one destination") }
                for (i, item) in items.enumerated() {
                    guard let name = reader.string(item, "\(path).to[\(i)]") else { continue }
                    if !destinations.contains(name) {
                        reader.fail("\(path).to[\(i)]", "unknown destination \(JSONWriter.quote(name)) (known: \(destinations.sorted().joined(separator: ", ")))")
                    } else if route.destinations.contains(name) {
                        reader.fail("\(path).to[\(i)]", "destination \(JSONWriter.quote(name)) is listed twice")
                    } else {
                        route.destinations.append(name)
                    }
                }
            } else {
                reader.fail("\(path).to", "must be an array of destination names, not \(targets.kindName)")
            }
        } else {
            reader.fail("\(path).to", "is required")
        }
        return reader.issues.count == before ? route : nil
    }
}
