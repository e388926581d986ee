/// FastSpring: `X-FS-Signature` over the whole body, `{"events":[...]}` with any number of
/// events. Each event is stored on its own with its exact bytes, sliced from the body.
enum FastSpringAdapter {
    static func normalize(source: SourceConfig, headers: HeaderList, body: [UInt8], verify: Bool) throws(IngestError) -> [NormalizedEvent] {
        if verify {
            try Signatures.verifyHMAC(headers: headers, body: body, secrets: source.secrets, header: "X-FS-Signature", encoding: .base64, prefix: "")
        }
        let parsed: (value: JSONValue, elements: [Range<Int>]?)
        do {
            parsed = try JSONParser.parse(body, capturingArrayMember: "events")
        } catch {
            throw IngestError(.badRequest, "FastSpring body is not valid JSON: \(error)")
        }
        guard parsed.value.objectValue != nil else { throw IngestError(.badRequest, "FastSpring body must be a JSON object with an events array") }
        guard let events = parsed.value["events"]?.arrayValue, let ranges = parsed.elements, ranges.count == events.count else {
            throw IngestError(.badRequest, "FastSpring body has no events array")
        }
        let kept = ProviderAdapters.keptHeaders(headers, extra: ["x-fs-signature"])
        var result: [NormalizedEvent] = []
        for (index, (event, range)) in zip(events, ranges).enumerated() {
            guard event.objectValue != nil else { throw IngestError(.badRequest, "events[\(index)] is not an object") }
            guard let id = event["id"]?.stringValue, !id.isEmpty else { throw IngestError(.badRequest, "events[\(index)] has no id") }
            guard let type = event["type"]?.stringValue, !type.isEmpty else { throw IngestError(.badRequest, "events[\(index)] has no type") }
            let data = event["data"]
            let products = data?["items"]?.arrayValue?.compactMap { $0["product"]?.scalarText } ?? []
            result.append(NormalizedEvent(
                type: type, status: status(type: type, data: data), products: products,
                orderID: data?["id"]?.scalarText ?? "", providerEventID: id, headers: kept, body: Array(body[range])
            ))
        }
        return result
    }

    /// The status an event type implies; for types that imply none, `data.completed`.
    static func status(type: String, data: JSONValue?) -> String {
        switch type {
        case "order.completed": return "COMPLETED"
        case "order.failed": return "FAILED"
        case "order.canceled": return "CANCELED"
        case "fulfillment.failed": return "FAILED"
        default:
            if type.hasSuffix(".charge.completed") { return "COMPLETED" }
            if type.hasSuffix(".charge.failed") { return "FAILED" }
            switch data?["completed"]?.boolValue {
            case true?: return "COMPLETED"
            case false?: return "FAILED"
            case nil: return ""
            }
        }
    }
}
