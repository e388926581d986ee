import Foundation
import RelayCore
import RelayTesting
import Testing

/// The web console in a real headless Chromium against a real relay and real downstreams: an
/// operator finds an event, sees its attempts, retries a dead delivery once its destination is
/// back, runs a replay from its preview to its end, pauses and resumes a destination, and a
/// wrong token shows nothing. Webhook values render as text; the page requests nothing outside
/// the relay. With RELAY_CONSOLE_SCREENSHOTS=DIR it saves a PNG of each page there (docs/).
@Suite(.serialized) struct ConsoleBrowserTests {  // one Chromium at a time: two at once on 2 cores starve the rest of the suite
    static let token = "console-t0ken"
    static let secret = "console-signing-secret"
    /// In a body, a header and a provider id: shown literally, never run.
    static let hostile = #"<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">"#

    @Test(.timeLimit(.minutes(3)))
    func anOperatorFindsFixesAndReplaysEventsInTheBrowser() async throws {
        let orders = TestDownstream()
        let ordersPort = try await orders.start()
        // Down at first (nothing listens on the port), brought up later.
        let alerts = TestDownstream()
        let alertsPort = unusedLoopbackPort()
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "status": "/status" },
                                 "signature": { "scheme": "hmac-sha256", "header": "X-Shop-Hmac", "encoding": "hex" }, "secret": "\(Self.secret)" } },
          "destinations": { "orders": { "url": "http://127.0.0.1:\(ordersPort)/orders" },
                            "alerts": { "url": "http://127.0.0.1:\(alertsPort)/alerts", "retry": { "max_attempts": 2, "initial_backoff_ms": 20, "max_backoff_ms": 40 } } },
          "routes": [ { "name": "orders", "match": { "type": "order.*" }, "to": ["orders"] }, { "name": "failed", "match": { "status": "FAILED" }, "to": ["alerts"] } ] }
        """
        let relay = try await LiveRelay(routes: routes, adminToken: Self.token)
        let browser = try await Browser.start()
        let shots = ProcessInfo.processInfo.environment["RELAY_CONSOLE_SCREENSHOTS"]
        func shoot(_ name: String) async throws {
            guard let shots else { return }
            try Data(try await browser.screenshot()).write(to: URL(fileURLWithPath: "\(shots)/console-\(name).png"))
        }
        /// A signed webhook, as the provider sends it.
        func post(_ body: String, headers: [(String, String)] = []) async throws -> String {
            let signature = Signatures.hmacSHA256(key: Array(Self.secret.utf8), message: Array(body.utf8)).map { String(format: "%02x", $0) }.joined()
            let response = try await relay.post("shop", body: Array(body.utf8), headers: [("Content-Type", "application/json"), ("X-Shop-Hmac", signature)] + headers)
            #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
            return try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
        }
        do {
            let paid = try await post(#"{"id":"o-1","type":"order.paid","status":"PAID"}"#)
            let failed = try await post(
                "{\"id\":\(JSONWriter.quote("o-2" + Self.hostile)),\"type\":\"order.failed\",\"status\":\"FAILED\",\"note\":\(JSONWriter.quote(Self.hostile))}",
                headers: [("X-Note", Self.hostile)]
            )
            // alerts is down: its delivery of the failed order dies after 2 attempts.
            let dead = try await eventually(timeout: .seconds(30)) {
                try await relay.admin("/admin/events/\(failed)", token: Self.token).json?["deliveries"]?.arrayValue?.contains { $0["state"]?.stringValue == "dead" } == true
            }
            try #require(dead, "the alerts delivery did not die")
            let admin = "http://127.0.0.1:\(relay.adminPort)"

            // A wrong token: an error, and nothing of the relay's data.
            try await browser.go(admin + "/")
            try await browser.type("input[name=token]", "not-the-token\n")
            try await browser.waitForText("Wrong token")
            let refused = try await browser.text("body")
            #expect(!refused.contains("evt_") && !refused.contains("orders"), "a wrong token shows nothing: \(refused)")
            try await shoot("login")

            // The right one: the overview, with its chart and destinations.
            try await browser.type("input[name=token]", Self.token + "\n")
            try await browser.waitForText("Last hour: 2 events stored")
            try await browser.waitFor("#app svg rect")
            try await shoot("overview")

            // Events: filter by status, find the failed order, open it.
            try await browser.go(admin + "/ui/#/events")
            try await browser.waitForText(paid)
            try await browser.type("input[name=status]", "FAILED\n")
            try await browser.waitFor("#events a[href='#/event/\(failed)']")
            let listed = try await browser.text("#events")
            #expect(listed.contains(failed) && !listed.contains(paid), "the filter shows only the failed order: \(listed)")
            try await shoot("events")
            try await browser.click("#events a[href='#/event/\(failed)']")
            try await browser.waitFor("[data-delivery=alerts]")
            try await browser.waitForText("dead", in: "[data-delivery=alerts]")
            let detail = try await browser.text()
            #expect(detail.contains("connection refused") || detail.contains("Couldn't connect") || detail.contains("refused"), "the attempts show the error: \(detail)")
            // Hostile values are text: in the body, a header and the provider id, and nothing ran.
            #expect(detail.contains(Self.hostile), "shown literally")
            #expect(detail.contains("received via") && detail.contains("webhook"), "how it arrived")
            #expect(try await browser.run("return document.querySelectorAll('script').length").doubleValue == 1, "only the console's own script")
            #expect(try await browser.run("return document.querySelectorAll('#app img').length").doubleValue == 0)
            #expect(try await browser.run("return window.__xss === undefined").boolValue == true, "no injected script ran")
            try await shoot("event")

            // The first page of the list follows new events without a reload.
            try await browser.go(admin + "/ui/#/events")
            try await browser.waitForText(paid, in: "#events")
            let arrived = try await post(#"{"id":"o-live","type":"refund.created","status":"OK"}"#)
            try await browser.waitForText(arrived, in: "#events", timeout: .seconds(15))
            // A filter is checked before it is sent.
            try await browser.type("input[name=since]", "yesterday\n")
            try await browser.waitForText("since: give an RFC 3339 time", in: "#notice")

            // alerts comes back; the dead delivery is retried from the deliveries page.
            _ = try await alerts.start(port: alertsPort)
            try await browser.go(admin + "/ui/#/deliveries/state=dead")
            try await browser.click("[data-retry='\(failed):alerts']")
            try await browser.waitForText("Retry started", in: "#notice")
            try await shoot("deliveries")
            #expect(await alerts.wait(timeout: .seconds(20)) { $0.contains { $0.header("webhook-id") == failed } }, "the retried delivery reached alerts")

            // A replay: preview, run, and its progress to the end.
            try await browser.go(admin + "/ui/#/replay")
            try await browser.type("input[name=type]", "order.*")
            try await browser.click("#preview-replay")
            // The paid order goes to orders; the failed one to orders and (FAILED) alerts.
            try await browser.waitForText("2 events matched; 3 deliveries would be sent", in: "#preview")
            try await shoot("replay")
            let before = orders.requests.count
            try await browser.click("#run-replay")
            try await browser.waitFor("#progress[data-state=finished]", timeout: .seconds(30))
            let progress = try await browser.text("#progress")
            #expect(progress.contains("3 of 3 deliveries finished: 3 succeeded"), "\(progress)")
            #expect(orders.requests.count >= before + 2, "the replay reached orders")

            // Pause orders: a new order waits; resume: it arrives.
            try await browser.go(admin + "/ui/#/destinations")
            try await browser.click("[data-destination=orders]")
            try await browser.waitForText("orders: paused", in: "#notice")
            let waiting = try await post(#"{"id":"o-3","type":"order.paid","status":"PAID"}"#)
            try await browser.waitForText("paused")
            let held = try await eventually(timeout: .seconds(10)) {
                try await relay.admin("/admin/destinations", token: Self.token).json?["destinations"]?.arrayValue?.first { $0["name"]?.stringValue == "orders" }?["pending"]?.doubleValue == 1
            }
            #expect(held, "the new delivery waits")
            #expect(!orders.requests.contains { $0.header("webhook-id") == waiting }, "nothing is sent to a paused destination")
            try await shoot("destinations")
            try await browser.click("[data-destination=orders]")
            try await browser.waitForText("orders: healthy", in: "#notice")
            #expect(await orders.wait(timeout: .seconds(20)) { $0.contains { $0.header("webhook-id") == waiting } }, "resumed: the waiting delivery arrives")

            // Routes: a backtest of a file that also sends every order to alerts.
            try await browser.go(admin + "/ui/#/routes")
            try await browser.waitFor("#config-version")
            #expect(!(try await browser.text("body")).contains(Self.secret), "the config in force is shown without its secrets")
            let candidate = routes.replacingOccurrences(of: #""to": ["orders"]"#, with: #""to": ["orders", "alerts"]"#)
            try await browser.run("document.querySelector('textarea[name=config]').value = arguments[0]", [candidate])
            try await browser.click("#run-backtest")
            try await browser.waitForText("would go to different destinations", in: "#backtest")
            #expect(try await browser.text("#backtest").contains("2 would go to different destinations"), "the two PAID orders gain alerts")
            try await browser.run("document.querySelector('#backtest').scrollIntoView()")
            try await shoot("routes")
            // Bad input is refused before it is sent.
            try await browser.run("document.querySelector('textarea[name=config]').value = '{ not json'")
            try await browser.click("#run-backtest")
            try await browser.waitForText("Not sent:", in: "#backtest")

            // The keyboard alone reaches a page: Tab to the navigation's "Destinations", Enter.
            try await browser.go(admin + "/ui/#/overview")
            try await browser.waitFor("#app svg")
            try await browser.run("document.activeElement && document.activeElement.blur(); window.focus()")
            var focused = ""
            for _ in 0..<12 where focused != "#/destinations" {
                try await browser.press(["\u{E004}"])
                focused = try await browser.run("const e = document.activeElement; return e && e.getAttribute('href') || ''").stringValue ?? ""
            }
            #expect(focused == "#/destinations", "Tab never reached the Destinations link")
            try await browser.press(["\u{E007}"])
            try await browser.waitForText("A pause holds until resumed")

            // At a phone's width the pages fit: only tables scroll sideways, inside their box.
            try await browser.resize(width: 390, height: 844)
            for page in ["overview", "events", "event/\(failed)", "destinations"] {
                try await browser.go(admin + "/ui/#/" + page)
                try await browser.waitFor("#app table")
                let overflow = try await browser.run("return document.documentElement.scrollWidth - window.innerWidth").doubleValue ?? 1
                #expect(overflow <= 0, "\(page) is \(overflow) px wider than a phone")
            }
            try await browser.go(admin + "/ui/#/events")
            try await browser.waitFor("#events table")
            try await shoot("phone")

            // Nothing outside the relay was requested: the browser's network log, from the first page on.
            let urls = try await browser.networkRequests()
            let outside = urls.filter { !$0.hasPrefix(admin + "/") && !$0.hasPrefix("data:") }
            #expect(urls.count > 20 && outside.isEmpty, "\(urls.count) requests; outside the relay: \(outside)")
            #expect(try await browser.requestedURLs().allSatisfy { $0.hasPrefix(admin + "/") })
            let problems = try await browser.log().filter { $0.hasPrefix("SEVERE") && !$0.contains("401") }
            #expect(problems.isEmpty, "browser errors: \(problems)")
        } catch {
            await browser.quit()
            await relay.stop()
            await orders.stop()
            await alerts.stop()
            throw error
        }
        await browser.quit()
        await relay.stop()
        await orders.stop()
        await alerts.stop()
    }

    /// README "Ordering": a held key on the destinations page, retried and skipped from there.
    @Test(.timeLimit(.minutes(2)))
    func anOperatorSeesHeldKeysAndRetriesOrSkipsThemInTheBrowser() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        // /flaky/1: each event's first request answers 503, later ones 204; one attempt allowed,
        // so each delivery dies once and a retry succeeds.
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "order_id": "/order_id" } } },
          "destinations": { "ledger": { "url": "http://127.0.0.1:\(port)/flaky/1", "rate_per_s": 50,
                                        "retry": { "max_attempts": 1 }, "ordering": { "key": "order_id", "on_dead": "hold" } } },
          "routes": [ { "name": "all", "to": ["ledger"] } ] }
        """
        let relay = try await LiveRelay(routes: routes, adminToken: Self.token)
        let browser = try await Browser.start()
        func post(_ id: String, order: String) async throws -> String {
            let response = try await relay.post("shop", body: Array("{\"id\":\"\(id)\",\"type\":\"order.updated\",\"order_id\":\"\(order)\"}".utf8), headers: [("Content-Type", "application/json")])
            return try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
        }
        func heldDelivery(_ key: String) async throws -> String? {
            let ledger = try await relay.admin("/admin/destinations", token: Self.token).json?["destinations"]?.arrayValue?.first { $0["name"]?.stringValue == "ledger" }
            return ledger?["held_keys"]?.arrayValue?.first { $0["key"]?.stringValue == key }?["delivery"]?.stringValue
        }
        do {
            let a = try await post("a", order: "o-7")
            let b = try await post("b", order: "o-7")
            let c = try await post("c", order: "o-8")
            let held = try await eventually(timeout: .seconds(20)) {
                let (first, second) = (try await heldDelivery("o-7"), try await heldDelivery("o-8"))
                return first == "\(a):ledger" && second == "\(c):ledger"
            }
            try #require(held, "a and c did not die and hold their orders")
            let admin = "http://127.0.0.1:\(relay.adminPort)"
            try await browser.go(admin + "/")
            try await browser.type("input[name=token]", Self.token + "\n")
            try await browser.waitForText("Last hour:")
            try await browser.go(admin + "/ui/#/destinations")
            try await browser.waitFor("#held-keys [data-skip='\(c):ledger']")
            let page = try await browser.text("#app")
            #expect(page.contains("by order_id, on dead: hold") && page.contains("50/s"), "ordering and rate shown: \(page)")
            let heldText = try await browser.text("#held-keys")
            #expect(heldText.contains("o-7") && heldText.contains(a) && heldText.contains("o-8") && heldText.contains(c), "\(heldText)")
            #expect(!downstream.requests.contains { $0.header("webhook-id") == b }, "b waits behind its order's dead delivery")

            // Retry a from the page: it succeeds, o-7 moves on, b goes out (and dies: held by b).
            try await browser.click("#held-keys [data-retry='\(a):ledger']")
            try await browser.waitForText("moves on once it succeeds", in: "#notice")
            let movedOn = try await eventually(timeout: .seconds(20)) { try await heldDelivery("o-7") == "\(b):ledger" }
            #expect(movedOn, "after the retry of a, b should hold o-7")
            #expect(downstream.requests.last { $0.header("webhook-id") == a }?.status == 204)

            // Skip c from the page: o-8 moves on, c is not sent again.
            try await browser.click("#held-keys [data-skip='\(c):ledger']")
            try await browser.waitForText("skipped: key o-8 moves on", in: "#notice")
            try await browser.waitForText(b, in: "#held-keys", timeout: .seconds(10))
            #expect(try await heldDelivery("o-8") == nil)
            let afterSkip = try await browser.text("#held-keys")
            #expect(!afterSkip.contains("o-8"), "\(afterSkip)")
            #expect(downstream.requests.filter { $0.header("webhook-id") == c }.count == 1)
        } catch {
            await browser.quit()
            await relay.stop()
            await downstream.stop()
            throw error
        }
        await browser.quit()
        await relay.stop()
        await downstream.stop()
    }
}
