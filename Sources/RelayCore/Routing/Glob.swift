/// A glob compiled once at load: `*` matches any run of characters (also none), `?` exactly
/// one, `\` makes the next character literal. `[`, `]`, `{` and `}` are reserved (an error, so a
/// pattern written for another glob dialect is not silently taken literally).
public struct Glob: Sendable, Equatable, CustomStringConvertible {
    enum Piece: Sendable, Equatable {
        case literal([Character])
        case anyOne
        case anyRun
    }

    enum Shape: Sendable, Equatable {
        case exact(String)
        case prefix(String)
        case suffix(String)
        case everything
        case general([Piece])
    }

    public let description: String
    let shape: Shape

    /// Compiles `pattern`; throws a message saying what is wrong with it.
    public init(_ pattern: String) throws(GlobError) {
        description = pattern
        guard !pattern.isEmpty else { throw GlobError(message: "empty pattern") }
        var pieces: [Piece] = []
        var literal: [Character] = []
        var escaped = false
        for char in pattern {
            if escaped {
                literal.append(char)
                escaped = false
                continue
            }
            switch char {
            case "\\": escaped = true
            case "*", "?":
                if !literal.isEmpty { pieces.append(.literal(literal)); literal = [] }
                if char == "?" {
                    pieces.append(.anyOne)
                } else if pieces.last != .anyRun {
                    pieces.append(.anyRun)
                }
            case "[", "]", "{", "}":
                throw GlobError(message: "'\(char)' is not supported in globs (only * and ? are wildcards; escape it as \\\(char))")
            default: literal.append(char)
            }
        }
        if escaped { throw GlobError(message: "pattern ends with a lone '\\'") }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        switch pieces.count {
        case 1:
            if case .literal(let text) = pieces[0] { shape = .exact(String(text)); return }
            if pieces[0] == .anyRun { shape = .everything; return }
        case 2:
            if case .literal(let text) = pieces[0], pieces[1] == .anyRun { shape = .prefix(String(text)); return }
            if case .literal(let text) = pieces[1], pieces[0] == .anyRun { shape = .suffix(String(text)); return }
        default: break
        }
        shape = .general(pieces)
    }

    public func matches(_ text: String) -> Bool {
        switch shape {
        case .exact(let value): return text == value
        case .prefix(let value): return text.hasPrefix(value)
        case .suffix(let value): return text.hasSuffix(value)
        case .everything: return true
        case .general(let pieces): return Self.match(pieces[...], Array(text)[...])
        }
    }

    /// Backtracking only at `*`, which is linear enough for the short strings routed on.
    private static func match(_ pieces: ArraySlice<Piece>, _ text: ArraySlice<Character>) -> Bool {
        guard let first = pieces.first else { return text.isEmpty }
        let rest = pieces.dropFirst()
        switch first {
        case .literal(let chars):
            guard text.count >= chars.count, text.prefix(chars.count).elementsEqual(chars) else { return false }
            return match(rest, text.dropFirst(chars.count))
        case .anyOne:
            guard !text.isEmpty else { return false }
            return match(rest, text.dropFirst())
        case .anyRun:
            if rest.isEmpty { return true }
            var tail = text
            while true {
                if match(rest, tail) { return true }
                if tail.isEmpty { return false }
                tail = tail.dropFirst()
            }
        }
    }
}

/// Why a glob pattern was rejected.
public struct GlobError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
