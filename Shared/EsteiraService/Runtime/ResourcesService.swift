import ServiceLifecycle

/// Closes what the runtime opened (database pools, broker links) on graceful shutdown.
/// It is the first service of every group, so it stops last: after the services that use
/// these resources have finished their work.
struct ResourcesService: Service {
    let close: @Sendable () -> Void

    func run() async throws {
        try? await gracefulShutdown()
        close()
    }
}
