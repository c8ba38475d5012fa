/// What the connection knows about one open channel: publisher-confirm bookkeeping, deliveries
/// and returns read while waiting for something else, and whether the broker closed it.
/// Shared by the `AMQPChannel` handle and the connection's frame routing.
final class ChannelState {
    let id: UInt16
    var closeError: AMQPError?
    var confirmMode = false
    var maxUnconfirmed = 500
    /// Sequence number the next publish gets on a confirm channel (the broker counts from 1).
    var nextPublishTag: UInt64 = 1
    /// Every tag below this is confirmed; above it only those in `confirmedOutOfOrder` are.
    var lowestUnconfirmed: UInt64 = 1
    var confirmedOutOfOrder: Set<UInt64> = []
    var nackedTags: [UInt64] = []
    var returned: [AMQPReturnedMessage] = []
    var pending: [AMQPDelivery] = []
    var pendingHead = 0
    var consumerTags: Set<String> = []
    var cancelledByBroker: AMQPError?

    init(id: UInt16) { self.id = id }

    var unconfirmedCount: Int { Int(nextPublishTag - lowestUnconfirmed) - confirmedOutOfOrder.count }

    /// Applies a basic.ack / basic.nack; `multiple` covers every unconfirmed tag up to `tag`.
    func confirm(upTo tag: UInt64, multiple: Bool, nacked: Bool) {
        if multiple {
            if tag >= lowestUnconfirmed {
                if nacked {
                    for t in lowestUnconfirmed...tag where !confirmedOutOfOrder.contains(t) { nackedTags.append(t) }
                }
                lowestUnconfirmed = tag + 1
                if !confirmedOutOfOrder.isEmpty { confirmedOutOfOrder = confirmedOutOfOrder.filter { $0 > tag } }
                advance()
            }
        } else {
            guard tag >= lowestUnconfirmed, !confirmedOutOfOrder.contains(tag) else { return }
            if nacked { nackedTags.append(tag) }
            if tag == lowestUnconfirmed {
                lowestUnconfirmed += 1
                advance()
            } else {
                confirmedOutOfOrder.insert(tag)
            }
        }
    }

    private func advance() {
        while !confirmedOutOfOrder.isEmpty, confirmedOutOfOrder.remove(lowestUnconfirmed) != nil {
            lowestUnconfirmed += 1
        }
    }

    func popPending() -> AMQPDelivery? {
        guard pendingHead < pending.count else { return nil }
        let delivery = pending[pendingHead]
        pendingHead += 1
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
        }
        return delivery
    }
}
