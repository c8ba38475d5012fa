import HTTPClient
import StandIns
import Testing

@Suite struct AddressRangeTests {
    static func bytes(_ text: String) -> [UInt8] { AddressRange(text)!.bytes }

    @Test(arguments: ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                      "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fd00::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1",
                      "::ffff:10.0.0.1", "64:ff9b::a00:1"])
    func nonPublicAddressesAreRefused(address: String) throws {
        let policy = try OutboundPolicy.publicOnly()
        #expect(!policy.admits(address: Self.bytes(address)))
        #expect(OutboundPolicy.unrestricted.admits(address: Self.bytes(address)))
    }

    @Test(arguments: ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])
    func publicAddressesPass(address: String) throws {
        #expect(try OutboundPolicy.publicOnly().admits(address: Self.bytes(address)))
    }

    @Test func theAllowListAdmitsItsRangesAndHostsOnly() throws {
        let policy = try OutboundPolicy.publicOnly(allowing: ["127.0.0.2/32", "10.8.0.0/16", "Hooks.Internal"])
        #expect(policy.admits(address: Self.bytes("127.0.0.2")))
        #expect(!policy.admits(address: Self.bytes("127.0.0.1")))
        #expect(policy.admits(address: Self.bytes("10.8.200.1")))
        #expect(!policy.admits(address: Self.bytes("10.9.0.1")))
        #expect(policy.admitsHost("hooks.internal") && !policy.admitsHost("localhost"))
        #expect(throws: HTTPClientError.self) { try OutboundPolicy.publicOnly(allowing: ["10.0.0.0/33"]) }
        #expect(throws: HTTPClientError.self) { try OutboundPolicy.publicOnly(allowing: ["not a host!"]) }
        #expect(AddressRange("10.8.0.0/16")?.description == "10.8.0.0/16")
    }
}

/// The policy and the body cap on real transfers to a stand-in on 127.0.0.2.
@Suite struct OutboundTransferTests {
    @Test func aCheckedClientRefusesLoopbackAtConnectTimeUnlessAllowed() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/x", respond: StandInResponse(status: 200, body: "hello"))
            var configuration = HTTPClient.Configuration()
            configuration.policy = try OutboundPolicy.publicOnly()
            let error = await #expect(throws: HTTPClientError.self) {
                try await HTTPClient(configuration: configuration).execute(HTTPRequest(url: server.url("/x")))
            }
            #expect(error?.code == .forbiddenAddress)
            #expect(error?.isTransient == false)
            #expect(error.map { "\($0)" }?.contains("\(server.port)") == false)
            #expect(server.requests().isEmpty, "refused before connecting")

            configuration.policy = try OutboundPolicy.publicOnly(allowing: ["\(StandInHTTPServer.host)/32"])
            let response = try await HTTPClient(configuration: configuration).execute(HTTPRequest(url: server.url("/x")))
            #expect(response.bodyString == "hello")
        }
    }

    @Test func aBodyPastTheCapStopsTheTransferWithWhatWasRead() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/big", respond: StandInResponse(status: 200, body: [UInt8](repeating: 7, count: 8 << 20)))
            server.on("GET", "/small", respond: StandInResponse(status: 200, body: [UInt8](repeating: 7, count: 1000)))
            var configuration = HTTPClient.Configuration()
            configuration.maxResponseBytes = 4096
            let client = HTTPClient(configuration: configuration)
            let big = try await client.execute(HTTPRequest(url: server.url("/big")))
            #expect(big.status == 200 && big.body.count == 4096 && big.bodyTruncated)
            let small = try await client.execute(HTTPRequest(url: server.url("/small")))
            #expect(small.body.count == 1000 && !small.bodyTruncated)
        }
    }
}
