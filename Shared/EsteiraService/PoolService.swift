import Postgres
import ServiceLifecycle

/// Keeps a database pool for the lifetime of a service group and closes it on graceful
/// shutdown, after the services that use it have stopped taking work.
public struct PoolService: Service {
    /// The pool to close.
    public let pool: PostgresPool

    /// Creates the service for `pool`.
    public init(pool: PostgresPool) {
        self.pool = pool
    }

    public func run() async throws {
        try? await gracefulShutdown()
        pool.close()
    }
}
