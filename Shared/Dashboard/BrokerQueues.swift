import Foundation
import HTTPClient

/// Depth and consumers of the work queues, from RabbitMQ's management API.
struct BrokerQueues: Sendable {
    struct Queue: Sendable { var ready: Int; var unacked: Int; var consumers: Int }
    let managementURL: String?
    let virtualHost: String
    let client = HTTPClient(configuration: .init(timeout: .seconds(3), connectTimeout: .seconds(2), poolSize: 2))

    /// Queue name to figures, or why there are none.
    func queues() async -> Result<[String: Queue], BrokerQueuesError> {
        guard let base = managementURL else { return .failure(BrokerQueuesError(reason: "no management URL is configured")) }
        let vhost = virtualHost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "%2F"
        let url = base.trimmingCharacters(in: ["/"]) + "/api/queues/\(vhost)?columns=name,messages_ready,messages_unacknowledged,consumers"
        do {
            let response = try await client.execute(HTTPRequest(url: url, headers: ["Accept": "application/json"]))
            guard response.status == 200 else { return .failure(BrokerQueuesError(reason: "it answered HTTP \(response.status)")) }
            guard let list = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] else {
                return .failure(BrokerQueuesError(reason: "its answer was not a list of queues"))
            }
            var out: [String: Queue] = [:]
            for q in list {
                guard let name = q["name"] as? String else { continue }
                out[name] = Queue(ready: q["messages_ready"] as? Int ?? 0, unacked: q["messages_unacknowledged"] as? Int ?? 0,
                                  consumers: q["consumers"] as? Int ?? 0)
            }
            return .success(out)
        } catch {
            return .failure(BrokerQueuesError(reason: "\(error)"))
        }
    }
}

struct BrokerQueuesError: Error { var reason: String }

