import RelayCore
import RelayTesting
import Testing

/// A deterministic generator, so a failing fuzz case can be reproduced from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Feeds thousands of random and mutated payloads and headers, built from the fixtures, through
/// every adapter. The invariants: no crash; only accept or a 401/400 rejection; and nothing is
/// accepted unless an independent check says its signature is valid.
@Suite struct AdapterFuzzTests {
    static let iterations = 4000

    func mutate(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var out = bytes
        switch rng.next() % 7 {
        case 0 where !out.isEmpty:  // flip a bit
            let i = Int(rng.next() % UInt64(out.count))
            out[i] ^= UInt8(1 << (rng.next() % 8))
        case 1 where !out.isEmpty:  // truncate
            out = Array(out[0..<Int(rng.next() % UInt64(out.count))])
        case 2:  // insert JSON-ish noise
            let noise = Array(["{", "}", "[", "]", "\"", ",", ":", "null", "\\u00", "\u{0}", "1e999", "-", "\"events\""].randomElement(using: &rng)!.utf8)
            let i = out.isEmpty ? 0 : Int(rng.next() % UInt64(out.count))
            out.insert(contentsOf: noise, at: i)
        case 3 where out.count > 2:  // duplicate a slice
            let a = Int(rng.next() % UInt64(out.count)), b = Int(rng.next() % UInt64(out.count))
            out += out[min(a, b)..<max(a, b)]
        case 4:  // random bytes
            out = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 5:  // deep nesting
            out = Array(String(repeating: "[", count: Int(rng.next() % 400)).utf8) + out
        default:
            break
        }
        return out
    }

    func mutateHeader(_ value: String, _ rng: inout SplitMix64) -> String? {
        switch rng.next() % 6 {
        case 0: return nil
        case 1: return ""
        case 2: return String(value.dropLast(Int(rng.next() % 5)))
        case 3: return value + " v1," + String(repeating: "A", count: Int(rng.next() % 50))
        case 4: return String(value.reversed())
        default: return value
        }
    }

    func check(_ source: SourceConfig, _ headers: HeaderList, _ body: [UInt8], now: Timestamp, isValid: () -> Bool, accepted: inout Int, rejected: inout Int) {
        do {
            let events = try ProviderAdapters.normalize(source: source, headers: headers, body: body, now: now)
            accepted += 1
            #expect(isValid(), "accepted without a valid signature: \(headers.entries) body \(body.count) bytes")
            #expect(events.allSatisfy { !$0.body.isEmpty || body.isEmpty })
        } catch {
            rejected += 1
            #expect(error.code == .unauthorized || error.code == .badRequest)
        }
    }

    @Test func fastSpring() throws {
        var rng = SplitMix64(state: 0xF457)
        let fixtures = try Fixtures.fastSpringVectors.map { try Fixtures.bytes($0.file) }
        var accepted = 0, rejected = 0
        for _ in 0..<Self.iterations {
            let base = fixtures[Int(rng.next() % UInt64(fixtures.count))]
            let body = mutate(base, &rng)
            let honest = Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: body)
            // Half the time the mutated body is re-signed correctly, half the time it carries a
            // signature of the original or a mangled one.
            let claimed = rng.next() % 2 == 0 ? honest : (mutateHeader(Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: base), &rng) ?? "")
            let headers: HeaderList = claimed.isEmpty ? [:] : ["X-FS-Signature": claimed]
            check(fastSpringSource(), headers, body, now: Timestamp(seconds: 0), isValid: {
                claimed == honest
            }, accepted: &accepted, rejected: &rejected)
        }
        #expect(accepted > 100 && rejected > 100, "both outcomes exercised: \(accepted) accepted, \(rejected) rejected")
    }

    @Test func runa() throws {
        var rng = SplitMix64(state: 0x52A4)
        var accepted = 0, rejected = 0
        for _ in 0..<Self.iterations {
            let vector = Fixtures.runaVectors[Int(rng.next() % 2)]
            let base = try Fixtures.bytes(vector.file)
            let body = rng.next() % 3 == 0 ? base : mutate(base, &rng)
            let honest = Fixtures.svixSignature(secret: Fixtures.runaSecret, id: vector.id, timestamp: vector.timestamp, body: body)
            var headers: HeaderList = ["content-type": "application/json"]
            let id = rng.next() % 8 == 0 ? mutateHeader(vector.id, &rng) : vector.id
            let timestamp = rng.next() % 8 == 0 ? mutateHeader(String(vector.timestamp), &rng) : String(vector.timestamp)
            let signature = rng.next() % 2 == 0 ? honest : mutateHeader(vector.signature, &rng)
            if let id { headers.append(name: "svix-id", value: id) }
            if let timestamp { headers.append(name: "svix-timestamp", value: timestamp) }
            if let signature { headers.append(name: "svix-signature", value: signature) }
            let now = Timestamp(seconds: vector.timestamp + Int64(rng.next() % 600) - 300)
            check(runaSource(), headers, body, now: now, isValid: {
                guard let id, let timestamp, let signature, let seconds = Int64(timestamp), abs(now.seconds - seconds) <= 300 else { return false }
                let expected = Fixtures.svixSignature(secret: Fixtures.runaSecret, id: id, timestamp: seconds, body: body)
                return String(seconds) == timestamp && signature.split(separator: " ").contains { $0 == expected }
            }, accepted: &accepted, rejected: &rejected)
        }
        #expect(accepted > 100 && rejected > 100, "both outcomes exercised: \(accepted) accepted, \(rejected) rejected")
    }

    @Test func generic() throws {
        var rng = SplitMix64(state: 0x6E6E)
        let base = Array("{\"id\":\"ev_1\",\"topic\":\"orders/paid\",\"line_items\":[{\"sku\":\"a\"},{\"sku\":\"b\"}]}".utf8)
        let source = SourceConfig(
            name: "shop", provider: .generic, secrets: [Secret(value: "k", origin: "test")],
            signature: SignatureConfig(scheme: .hmacSHA256, header: "X-Sig", encoding: .hex, prefix: "sha256="),
            fields: FieldPointers(id: "/id", type: "/topic", product: "/line_items/*/sku")
        )
        var accepted = 0, rejected = 0
        for _ in 0..<Self.iterations {
            let body = mutate(base, &rng)
            let honest = "sha256=" + Digest.hex(Signatures.hmacSHA256(key: Array("k".utf8), message: body))
            let claimed = rng.next() % 2 == 0 ? honest : mutateHeader(honest, &rng)
            let headers: HeaderList = claimed.map { ["X-Sig": $0] } ?? [:]
            check(source, headers, body, now: Timestamp(seconds: 0), isValid: { claimed?.lowercased() == honest }, accepted: &accepted, rejected: &rejected)
        }
        #expect(accepted > 100 && rejected > 100, "both outcomes exercised: \(accepted) accepted, \(rejected) rejected")
    }
}
