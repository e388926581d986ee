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
                        if let known, let exact = glob.exactText, !known.contains(exact) {
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

/// An event's routed-on fields as UTF-8, extracted once per event rather than once per route.
struct MatchInput {
    let provider: [UInt8]
    let source: [UInt8]
    let type: [UInt8]
    let status: [UInt8]
    let products: [[UInt8]]

    init(_ event: Event) {
        provider = Array(event.provider.utf8)
        source = Array(event.source.utf8)
        type = Array(event.type.utf8)
        status = Array(event.status.utf8)
        products = event.products.map { Array($0.utf8) }
    }
}

/// A route as the matcher uses it: a class, so walking 1,000 of them per event does not copy
/// (and retain) every route's arrays.
final class CompiledRoute: Sendable {
    let name: String
    let provider: [Glob]?
    let source: [Glob]?
    let type: [Glob]?
    let status: [Glob]?
    let product: [Glob]?
    let conditions: [WhereCondition]
    let destinations: [String]

    init(_ route: Route) {
        name = route.name
        provider = route.provider
        source = route.source
        type = route.type
        status = route.status
        product = route.product
        conditions = route.conditions
        destinations = route.destinations
    }

    /// Whether every given field matches (the `where` conditions are checked separately).
    func matchesFields(_ input: MatchInput) -> Bool {
        guard Self.any(provider, input.provider), Self.any(source, input.source), Self.any(type, input.type), Self.any(status, input.status) else {
            return false
        }
        if let product, !input.products.contains(where: { value in Self.any(product, value) }) { return false }
        return true
    }

    @inline(__always)
    private static func any(_ globs: [Glob]?, _ value: [UInt8]) -> Bool {
        guard let globs else { return true }
        return value.withUnsafeBufferPointer { bytes in globs.contains { $0.matches(bytes: bytes) } }
    }
}
