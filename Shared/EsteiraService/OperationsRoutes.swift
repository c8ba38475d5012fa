import Foundation
import Hummingbird

extension Router {
    /// Adds `GET /healthz` (200 when every check passes, 503 otherwise, with a JSON report)
    /// and `GET /metrics` (Prometheus text format) to the router.
    public func addOperationsRoutes(checks: [HealthCheck]) {
        get("healthz") { _, _ -> Response in
            let report = await HealthReport.evaluate(checks)
            let data = try JSONEncoder().encode(report)
            return Response(status: report.status == "ok" ? .ok : .serviceUnavailable,
                            headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        get("metrics") { _, _ -> Response in
            let text = Observability.registry.emitToBuffer()
            return Response(status: .ok,
                            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
    }
}
