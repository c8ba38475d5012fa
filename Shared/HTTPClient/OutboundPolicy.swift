#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which addresses a request may connect to, checked against the address each connection is
/// made to (after DNS, at connect time), so a host name cannot be pointed somewhere else
/// between a check and the connect.
///
/// Targets an operator configured are trusted (``unrestricted``). A URL chosen by whoever
/// created a job is not: ``publicOnly(allowing:)`` refuses loopback, private (RFC 1918),
/// link-local (cloud metadata included), CGNAT, unique-local, unspecified, multicast and
/// reserved addresses, unless the operator's allow-list admits the address or the host.
public struct OutboundPolicy: Sendable, Equatable {
    /// Whether non-public addresses are refused.
    public var refusesNonPublicAddresses: Bool
    /// Address ranges admitted even so.
    public var allowedRanges: [AddressRange]
    /// Host names (lower case) whose requests are not checked at all.
    public var allowedHosts: Set<String>

    /// Any address: for operator-configured targets.
    public static let unrestricted = OutboundPolicy(refusesNonPublicAddresses: false, allowedRanges: [], allowedHosts: [])

    /// Public addresses only, plus `allowing`: CIDR ranges (`10.1.0.0/16`, `::1/128`), single
    /// addresses, or host names (`hooks.internal`).
    /// - Throws: ``HTTPClientError`` (`invalidRequest`) naming an entry that is neither.
    public static func publicOnly(allowing entries: [String] = []) throws -> OutboundPolicy {
        var ranges: [AddressRange] = [], hosts: Set<String> = []
        for entry in entries.map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            if let range = AddressRange(entry) {
                ranges.append(range)
            } else if entry.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || isalnum(Int32($0)) != 0 }) {
                hosts.insert(entry.lowercased())
            } else {
                throw HTTPClientError(code: .invalidRequest, message: "allow-list entry \"\(entry)\" is neither an address range nor a host name")
            }
        }
        return OutboundPolicy(refusesNonPublicAddresses: true, allowedRanges: ranges, allowedHosts: hosts)
    }

    /// Whether a request to `host` skips the address check (a host the allow-list names).
    public func admitsHost(_ host: String) -> Bool {
        !refusesNonPublicAddresses || allowedHosts.contains(host.lowercased())
    }

    /// The policy each socket to `host` is checked against, or nil when none is checked (an
    /// unrestricted policy, or a host the allow-list names).
    func checking(host: String) -> OutboundPolicy? {
        refusesNonPublicAddresses && !admitsHost(host) ? self : nil
    }

    /// Whether a connection to `address` (4 or 16 bytes) is allowed.
    public func admits(address: [UInt8]) -> Bool {
        guard refusesNonPublicAddresses else { return true }
        if allowedRanges.contains(where: { $0.contains(address) }) { return true }
        return !AddressRange.nonPublic.contains { $0.contains(address) }
    }
}

/// An IPv4 or IPv6 range: an address and a prefix length.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    /// The network's bytes (4 or 16).
    public let bytes: [UInt8]
    /// Leading bits that must match.
    public let prefix: Int

    /// Parses `a.b.c.d/n`, `x::y/n`, or a single address; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = AddressRange.parse(String(parts[0])) else { return nil }
        let bits = address.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...bits).contains(n) else { return nil }
            prefix = n
        }
        self.bytes = address
        self.prefix = prefix
    }

    /// Whether `address` (of the same family) is in the range. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) counts as its IPv4 address.
    public func contains(_ address: [UInt8]) -> Bool {
        var address = address
        if address.count == 16, bytes.count == 4, address[0..<10].allSatisfy({ $0 == 0 }), address[10] == 0xff, address[11] == 0xff {
            address = Array(address[12...])
        }
        guard address.count == bytes.count else { return false }
        var left = prefix
        for (a, b) in zip(address, bytes) where left > 0 {
            let mask: UInt8 = left >= 8 ? 0xff : ~(0xff >> UInt8(left))
            if a & mask != b & mask { return false }
            left -= 8
        }
        return true
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let text = bytes.withUnsafeBytes { raw in
            inet_ntop(bytes.count == 4 ? AF_INET : AF_INET6, raw.baseAddress, &buffer, socklen_t(buffer.count))
                .map { _ in String(cString: buffer) } ?? "?"
        }
        return "\(text)/\(prefix)"
    }

    /// An address in text, as 4 or 16 bytes.
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// What a user-chosen URL may not reach: every range that is not the public internet.
    public static let nonPublic: [AddressRange] = [
        "0.0.0.0/8",        // "this network", unspecified
        "10.0.0.0/8",       // private
        "100.64.0.0/10",    // CGNAT
        "127.0.0.0/8",      // loopback
        "169.254.0.0/16",   // link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",    // private
        "192.0.0.0/24",     // IETF protocol assignments
        "192.168.0.0/16",   // private
        "198.18.0.0/15",    // benchmarking
        "224.0.0.0/4",      // multicast
        "240.0.0.0/4",      // reserved, broadcast
        "::/128",           // unspecified
        "::1/128",          // loopback
        "64:ff9b::/96",     // NAT64 (reaches IPv4 addresses through a translator)
        "fc00::/7",         // unique-local
        "fe80::/10",        // link-local
        "fec0::/10",        // site-local (deprecated)
        "ff00::/8",         // multicast
    ].map { AddressRange($0)! }
}

/// The host of a URL, as curl will resolve it (no brackets around an IPv6 literal).
enum URLHost {
    static func of(_ url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        var rest = url[schemeEnd.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            return String(rest[rest.index(after: rest.startIndex)..<close]).lowercased()
        }
        if let colon = rest.lastIndex(of: ":") { rest = rest[..<colon] }
        return rest.isEmpty ? nil : String(rest).lowercased()
    }
}
