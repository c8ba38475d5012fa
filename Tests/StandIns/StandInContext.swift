import Hummingbird

/// The request context of the stand-in server: Hummingbird's basics plus what the server needs
/// from the connection, the client's port (for the request log) and a way to hang up.
struct StandInContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The client's TCP port; equal ports mean one kept-alive connection.
    let remotePort: Int?
    /// Closes the connection without answering.
    let closeConnection: @Sendable () async -> Void

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        let channel = source.channel
        self.remotePort = channel.remoteAddress?.port
        self.closeConnection = { try? await channel.close() }
    }
}
