/// A payload condition of a route: `{"path": "/data/total", "op": "gt", "value": 100}`.
///
/// The path is a JSON Pointer (`*` = any array element). A condition holds if *any* value the
/// path reaches satisfies it — except `ne`, which holds if *no* reached value equals `value`
/// (so `ne` is exactly the negation of `eq`). `exists` holds if the path reaches anything.
/// `gt gte lt lte` compare numbers with numbers and strings with strings; other pairs are false.
public struct WhereCondition: Sendable, Equatable {
    public enum Operator: String, Sendable, CaseIterable {
        case eq, ne, gt, gte, lt, lte, exists, `in`
    }

    public let pointer: JSONPointer
    public let op: Operator
    public let value: JSONValue

    public init(pointer: JSONPointer, op: Operator, value: JSONValue) {
        self.pointer = pointer
        self.op = op
        self.value = value
    }

    public func holds(in document: JSONValue) -> Bool {
        let reached = pointer.values(in: document)
        switch op {
        case .exists: return !reached.isEmpty
        case .eq: return reached.contains { $0 == value }
        case .ne: return !reached.contains { $0 == value }
        case .in:
            let options = value.arrayValue ?? []
            return reached.contains { candidate in options.contains(candidate) }
        case .gt, .gte, .lt, .lte:
            return reached.contains { compare($0) }
        }
    }

    private func compare(_ candidate: JSONValue) -> Bool {
        let order: Int
        switch (candidate, value) {
        case (.number(let a, _), .number(let b, _)): order = a < b ? -1 : (a > b ? 1 : 0)
        case (.string(let a), .string(let b)): order = a < b ? -1 : (a > b ? 1 : 0)
        default: return false
        }
        switch op {
        case .gt: return order > 0
        case .gte: return order >= 0
        case .lt: return order < 0
        case .lte: return order <= 0
        default: return false
        }
    }

    static func parse(_ value: JSONValue, _ path: String, _ reader: inout ConfigReader) -> WhereCondition? {
        let before = reader.issues.count
        guard reader.object(value, path, allowed: ["path", "op", "value"]) != nil else { return nil }
        var pointer: JSONPointer?
        if let text = reader.string(value["path"], "\(path).path") {
            pointer = JSONPointer(text)
            if pointer == nil { reader.fail("\(path).path", "must be a JSON Pointer starting with '/', not \(JSONWriter.quote(text))") }
        } else if value["path"] == nil {
            reader.fail("\(path).path", "is required")
        }
        var op: Operator?
        if let text = reader.string(value["op"], "\(path).op") {
            op = Operator(rawValue: text)
            if op == nil { reader.fail("\(path).op", "unknown operator \(JSONWriter.quote(text)) (known: \(Operator.allCases.map(\.rawValue).joined(separator: ", ")))") }
        } else if value["op"] == nil {
            reader.fail("\(path).op", "is required")
        }
        let operand = value["value"]
        if let op {
            switch op {
            case .exists:
                if operand != nil { reader.fail("\(path).value", "is not used with exists") }
            case .in:
                if operand?.arrayValue == nil { reader.fail("\(path).value", "must be an array for in") }
            case .gt, .gte, .lt, .lte:
                switch operand {
                case .number?, .string?: break
                default: reader.fail("\(path).value", "must be a number or a string for \(op.rawValue)")
                }
            case .eq, .ne:
                if operand == nil { reader.fail("\(path).value", "is required for \(op.rawValue)") }
            }
        }
        guard reader.issues.count == before, let pointer, let op else { return nil }
        return WhereCondition(pointer: pointer, op: op, value: operand ?? .null)
    }
}
