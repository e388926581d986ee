/// Walks a parsed configuration document, collecting every problem with its path rather than
/// stopping at the first, so `relay routes check` can list them all.
struct ConfigReader {
    let file: String
    let environment: [String: String]
    /// Missing environment variables are not errors (tools that verify no signature).
    let lenientSecrets: Bool
    private(set) var issues: [ConfigIssue] = []

    init(file: String, environment: [String: String], lenientSecrets: Bool = false) {
        self.file = file
        self.environment = environment
        self.lenientSecrets = lenientSecrets
    }

    mutating func fail(_ path: String, _ message: String) {
        issues.append(ConfigIssue(file: file, path: path, message: message))
    }

    /// The members of an object; unknown keys are reported (a typo must not be ignored).
    mutating func object(_ value: JSONValue?, _ path: String, allowed: Set<String>) -> [(key: String, value: JSONValue)]? {
        guard let value else { return nil }
        guard let members = value.objectValue else {
            fail(path, "must be an object, not \(value.kindName)")
            return nil
        }
        var seen = Set<String>()
        for member in members {
            if !allowed.contains(member.key) {
                fail(join(path, member.key), "unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            if !seen.insert(member.key).inserted {
                fail(join(path, member.key), "key appears more than once")
            }
        }
        return members
    }

    mutating func string(_ value: JSONValue?, _ path: String) -> String? {
        guard let value else { return nil }
        guard let text = value.stringValue else {
            fail(path, "must be a string, not \(value.kindName)")
            return nil
        }
        return text
    }

    /// A string or an array of strings.
    mutating func strings(_ value: JSONValue?, _ path: String) -> [String]? {
        guard let value else { return nil }
        if let text = value.stringValue { return [text] }
        guard let items = value.arrayValue else {
            fail(path, "must be a string or an array of strings, not \(value.kindName)")
            return nil
        }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            if let text = string(item, "\(path)[\(index)]") { result.append(text) }
        }
        return result
    }

    mutating func integer(_ value: JSONValue?, _ path: String, minimum: Int = 0) -> Int? {
        guard let value else { return nil }
        guard let number = value.doubleValue, number.rounded() == number, abs(number) < 1e15 else {
            fail(path, "must be a whole number, not \(value.kindName == "a number" ? JSONWriter.serialize(value) : value.kindName)")
            return nil
        }
        guard Int(number) >= minimum else {
            fail(path, "must be at least \(minimum), not \(Int(number))")
            return nil
        }
        return Int(number)
    }

    mutating func bool(_ value: JSONValue?, _ path: String) -> Bool? {
        guard let value else { return nil }
        guard let flag = value.boolValue else {
            fail(path, "must be true or false, not \(value.kindName)")
            return nil
        }
        return flag
    }

    /// Resolves `env:NAME` from the environment; other strings are taken literally.
    mutating func secretValue(_ text: String, _ path: String) -> Secret? {
        guard text.hasPrefix("env:") else {
            // An empty key makes every signature trivially forgeable.
            guard !text.isEmpty else {
                fail(path, "must not be empty")
                return nil
            }
            return Secret(value: text, origin: "inline")
        }
        let name = String(text.dropFirst(4))
        guard !name.isEmpty else {
            fail(path, "\"env:\" needs a variable name")
            return nil
        }
        guard let value = environment[name], !value.isEmpty else {
            // A placeholder key for tools that never verify (`relay routes test`).
            if lenientSecrets { return Secret(value: "whsec_cGxhY2Vob2xkZXI=", origin: "env:\(name) (unset)") }
            fail(path, "environment variable \(name) is not set")
            return nil
        }
        return Secret(value: value, origin: "env:\(name)")
    }

    /// A duration: a whole number with a unit (`500ms`, `30s`, `15m`, `2h`, `7d`), in milliseconds.
    mutating func duration(_ value: JSONValue?, _ path: String) -> Int64? {
        guard let text = string(value, path) else { return nil }
        guard let millis = Duration.parseMilliseconds(text) else {
            fail(path, "invalid duration \(JSONWriter.quote(text)) (use a number with ms, s, m, h or d, e.g. \"72h\")")
            return nil
        }
        return millis
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

extension Duration {
    /// Milliseconds in `500ms`, `30s`, `15m`, `2h`, `7d`; nil if malformed or not positive.
    public static func parseMilliseconds(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(number),
                  value > 0, value <= Int64.max / scale
            else { return nil }
            return value * scale
        }
        return nil
    }
}
