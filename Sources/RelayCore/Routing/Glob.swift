/// A glob compiled once at load: `*` matches any run of characters (also none), `?` exactly
/// one, `\` makes the next character literal. `[`, `]`, `{` and `}` are reserved (an error, so a
/// pattern written for another glob dialect is not silently taken literally).
public struct Glob: Sendable, Equatable, CustomStringConvertible {
    enum Piece: Sendable, Equatable {
        case literal([UInt8])
        case anyOne
        case anyRun
    }

    enum Shape: Sendable, Equatable {
        case exact, prefix, suffix, everything, general
    }

    public let description: String
    let shape: Shape
    /// The literal of `exact`, `prefix` and `suffix` shapes.
    let literal: [UInt8]
    /// The `general` shape flattened for matching without retains: kinds and literal ranges
    /// into one byte buffer.
    let steps: [Step]
    let bytes: [UInt8]

    struct Step: Sendable, Equatable {
        enum Kind: UInt8, Sendable { case literal, anyOne, anyRun }
        var kind: Kind
        var offset: Int32
        var length: Int32
    }

    /// Compiles `pattern`; throws a message saying what is wrong with it.
    public init(_ pattern: String) throws(GlobError) {
        description = pattern
        guard !pattern.isEmpty else { throw GlobError(message: "empty pattern") }
        var pieces: [Piece] = []
        var literal: [UInt8] = []
        var escaped = false
        for char in pattern {
            if escaped {
                literal += Array(String(char).utf8)
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
            default: literal += Array(String(char).utf8)
            }
        }
        if escaped { throw GlobError(message: "pattern ends with a lone '\\'") }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        var shape = Shape.general
        var fixed: [UInt8] = []
        switch pieces.count {
        case 1:
            if case .literal(let text) = pieces[0] { (shape, fixed) = (.exact, text) }
            if pieces[0] == .anyRun { shape = .everything }
        case 2:
            if case .literal(let text) = pieces[0], pieces[1] == .anyRun { (shape, fixed) = (.prefix, text) }
            if case .literal(let text) = pieces[1], pieces[0] == .anyRun { (shape, fixed) = (.suffix, text) }
        default: break
        }
        self.shape = shape
        self.literal = fixed
        var steps: [Step] = []
        var bytes: [UInt8] = []
        if shape == .general {
            for piece in pieces {
                switch piece {
                case .literal(let text):
                    steps.append(Step(kind: .literal, offset: Int32(bytes.count), length: Int32(text.count)))
                    bytes += text
                case .anyOne: steps.append(Step(kind: .anyOne, offset: 0, length: 0))
                case .anyRun: steps.append(Step(kind: .anyRun, offset: 0, length: 0))
                }
            }
        }
        self.steps = steps
        self.bytes = bytes
    }

    /// The exact text this glob matches, if it has no wildcard.
    var exactText: String? {
        shape == .exact ? String(decoding: literal, as: UTF8.self) : nil
    }

    /// Matching works on UTF-8 bytes: routing runs for every event against every route.
    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches(bytes: $0) }
    }

    func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        switch shape {
        case .everything: return true
        case .general: return matchGeneral(bytes)
        case .exact, .prefix, .suffix:
            let count = literal.count
            guard bytes.count >= count, shape != .exact || bytes.count == count else { return false }
            let start = shape == .suffix ? bytes.count - count : 0
            return literal.withUnsafeBufferPointer { pattern in
                count == 0 || Self.equal(bytes.baseAddress! + start, pattern.baseAddress!, count)
            }
        }
    }

    /// Byte comparison inlined: the literals are short, and a call to memcmp per route and
    /// field cost more than the comparison itself.
    @inline(__always)
    static func equal(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        var i = 0
        while i < count {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }

    /// Iterative wildcard matching that backtracks only to the last `*` (linear for patterns
    /// with one star, never exponential).
    private func matchGeneral(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        steps.withUnsafeBufferPointer { steps in
            bytes.withUnsafeBufferPointer { pattern in
                let n = text.count
                var p = 0, t = 0
                var starStep = -1, starText = 0
                while p < steps.count || t < n {
                    if p < steps.count {
                        let step = steps[p]
                        switch step.kind {
                        case .literal:
                            let length = Int(step.length)
                            if n - t >= length && Self.equal(text.baseAddress! + t, pattern.baseAddress! + Int(step.offset), length) {
                                t += length
                                p += 1
                                continue
                            }
                        case .anyOne:
                            // One character: a UTF-8 lead byte and its continuation bytes.
                            if t < n {
                                t += 1
                                while t < n && text[t] & 0xC0 == 0x80 { t += 1 }
                                p += 1
                                continue
                            }
                        case .anyRun:
                            starStep = p
                            starText = t
                            p += 1
                            continue
                        }
                    }
                    // Mismatch (or pattern used up with text left): let the last `*` take one more byte.
                    guard starStep >= 0, starText < n else { return false }
                    starText += 1
                    t = starText
                    p = starStep + 1
                }
                return true
            }
        }
    }
}

/// Why a glob pattern was rejected.
public struct GlobError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
