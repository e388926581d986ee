import RelayCore

/// Checks a JSON value against a JSON Schema (the subset the admin API's OpenAPI 3.1 document
/// uses: `$ref`, `type` (one or a list), `const`, `enum`, `properties`, `required`,
/// `additionalProperties`, `items`, `allOf`, `oneOf`, `minimum`, `maximum`, `minProperties`).
/// Returns every problem, each with the path to the value.
public struct SchemaValidator {
    public let document: JSONValue

    public init(document: JSONValue) {
        self.document = document
    }

    /// The object a `#/a/b` reference points to.
    public func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#/") else { return nil }
        var node: JSONValue? = document
        for part in reference.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
        return node
    }

    public func validate(_ value: JSONValue, _ schema: JSONValue, path: String = "$") -> [String] {
        if let reference = schema["$ref"]?.stringValue {
            guard let target = resolve(reference) else { return ["\(path): unresolvable \(reference)"] }
            return validate(value, target, path: path)
        }
        var problems: [String] = []
        if let types = schema["type"] {
            let allowed = types.arrayValue?.compactMap(\.stringValue) ?? [types.stringValue ?? ""]
            if !allowed.contains(where: { Self.has(value, type: $0) }) { return ["\(path): \(Self.describe(value)) is not \(allowed.joined(separator: " or "))"] }
        }
        if let constant = schema["const"], constant != value { problems.append("\(path): must be \(JSONWriter.serialize(constant))") }
        if let options = schema["enum"]?.arrayValue, !options.contains(value) { problems.append("\(path): \(JSONWriter.serialize(value)) is not one of \(JSONWriter.serialize(.array(options)))") }
        if case .number(let number, _) = value {
            if let minimum = schema["minimum"]?.doubleValue, number < minimum { problems.append("\(path): \(number) < \(minimum)") }
            if let maximum = schema["maximum"]?.doubleValue, number > maximum { problems.append("\(path): \(number) > \(maximum)") }
        }
        if let fields = value.objectValue {
            let names = Set(fields.map(\.key))
            for name in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where !names.contains(name) {
                problems.append("\(path): missing \(name)")
            }
            if let minimum = schema["minProperties"]?.doubleValue, Double(fields.count) < minimum { problems.append("\(path): fewer than \(Int(minimum)) properties") }
            let properties = schema["properties"]?.objectValue ?? []
            for (name, field) in fields {
                if let property = properties.first(where: { $0.key == name })?.value {
                    problems += validate(field, property, path: "\(path).\(name)")
                } else if let additional = schema["additionalProperties"] {
                    if case .bool(false) = additional {
                        problems.append("\(path): unexpected \(name)")
                    } else if additional.objectValue != nil {
                        problems += validate(field, additional, path: "\(path).\(name)")
                    }
                }
            }
        }
        if let items = value.arrayValue, let itemSchema = schema["items"] {
            for (index, item) in items.enumerated() { problems += validate(item, itemSchema, path: "\(path)[\(index)]") }
        }
        for part in schema["allOf"]?.arrayValue ?? [] { problems += validate(value, part, path: path) }
        if let options = schema["oneOf"]?.arrayValue {
            let matching = options.filter { validate(value, $0, path: path).isEmpty }.count
            if matching != 1 { problems.append("\(path): matches \(matching) of the oneOf schemas, not exactly one") }
        }
        return problems
    }

    static func has(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): true
        case ("integer", .number(let number, _)): number == number.rounded()
        default: false
        }
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .string: "a string"
        case .number: "a number"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
