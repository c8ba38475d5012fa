import EsteiraCore
import Hummingbird

/// The request context of routes behind bearer tokens: Hummingbird's, plus the
/// authenticated caller.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``BearerAuthMiddleware`` on routes that require a token.
    public var principal: Principal?
    /// Set on dashboard routes for a signed-in browser: what its forms must send back.
    public var csrfToken: String?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.principal = nil
        self.csrfToken = nil
    }
}
