import RelayPostgres
import Testing

@Suite struct PostgresURLTests {
    @Test func aFullURLIsReadWithItsDefaults() throws {
        let url = try PostgresURL("postgres://relay:s%40cret@db.internal:6543/relay_prod?sslmode=require")
        #expect(url.user == "relay" && url.password == "s@cret" && url.host == "db.internal" && url.port == 6543)
        #expect(url.database == "relay_prod" && url.sslMode == .require)
        let short = try PostgresURL("postgresql://relay@127.0.0.1/relay")
        #expect(short.password == nil && short.port == 5432 && short.sslMode == .prefer)
        let v6 = try PostgresURL("postgres://u:p@[::1]:5433/db?sslmode=disable")
        #expect(v6.host == "::1" && v6.port == 5433 && v6.sslMode == .disable)
        #expect(try PostgresURL("postgres://u:p@[::1]/db").port == 5432)
    }

    @Test func theDescriptionNeverShowsThePassword() throws {
        let url = try PostgresURL("postgres://relay:hunter2@db:5432/relay")
        #expect(!url.description.contains("hunter2"))
        #expect(url.description == "postgres://relay:***@db:5432/relay?sslmode=prefer")
    }

    @Test(arguments: [
        ("mysql://u@h/db", "scheme"),
        ("postgres://u@h", "database"),
        ("postgres://u@h/", "database"),
        ("postgres://u@h/a/b", "database"),
        ("postgres://h:5432/db", "user"),
        ("postgres://@h/db", "user"),
        ("postgres://u@/db", "host"),
        ("postgres://u@h:0/db", "port"),
        ("postgres://u@h:99999/db", "port"),
        ("postgres://u@h:abc/db", "port"),
        ("postgres://u@[::1/db", "host"),
        ("postgres://u:pa%zzss@h/db", "password"),
        ("postgres://u@h/db?sslmode=maybe", "sslmode"),
        ("postgres://u@h/db?timeout=3", "timeout"),
    ])
    func aMalformedURLNamesThePartThatIsWrong(_ text: String, _ part: String) {
        #expect(throws: PostgresURLError.self) { try PostgresURL(text) }
        do {
            _ = try PostgresURL(text)
        } catch {
            #expect(error.part == part, "\(text): \(error)")
            #expect(!error.description.contains("pa%zzss"), "the password is never echoed")
        }
    }
}
