/// A binary min-heap of payloads by due time (milliseconds), for the delivery queue and the
/// replay lane's retries.
public struct DueHeap<Payload> {
    public private(set) var items: [(due: Int64, payload: Payload)] = []

    public init() {}

    public var isEmpty: Bool { items.isEmpty }
    public var count: Int { items.count }
    public var first: (due: Int64, payload: Payload)? { items.first }

    public mutating func push(_ due: Int64, _ payload: Payload) {
        items.append((due, payload))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].due < items[parent].due else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes the earliest entry.
    public mutating func removeFirst() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && items[left].due < items[smallest].due { smallest = left }
            if right < items.count && items[right].due < items[smallest].due { smallest = right }
            guard smallest != parent else { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

extension DueHeap: Sendable where Payload: Sendable {}
