import EsteiraCore
import Foundation
import HTTPClient

/// Classifies a message with an OpenAI-compatible chat completions endpoint (operator
/// configured: `ESTEIRA_EMAIL_LLM_URL`, `ESTEIRA_EMAIL_LLM_KEY`, `ESTEIRA_EMAIL_LLM_MODEL`).
/// The answer must name one class; anything else, like any failure, leaves the message to
/// the rule classifier.
struct LLMClassifier: Sendable {
    let http: HTTPClient
    let url: String
    let key: String?
    let model: String

    /// The breaker of this endpoint (`llm:<host>`).
    var breakerName: String { "llm:" + (URL(string: url)?.host ?? url) }

    static let instructions = """
        You sort a shop's customer e-mails. Answer with exactly one of: order_status, refund, exchange, other. \
        order_status: where is my order, tracking, delivery. refund: money back, cancellation. exchange: another size, \
        colour or item, a defect. other: anything else.
        """

    /// The class the endpoint gives `subject` and `text` (the first 4,000 characters).
    /// - Throws: `JobError.transient` when the endpoint fails or answers something else than a class.
    func classify(subject: String, text: String) async throws -> MailClass {
        let body = JSONValue.object([
            "model": .string(model), "temperature": .number(0), "max_tokens": .number(5),
            "messages": .array([.object(["role": .string("system"), "content": .string(Self.instructions)]),
                                .object(["role": .string("user"), "content": .string("Subject: \(subject)\n\n\(String(text.prefix(4000)))")])]),
        ]).jsonText
        var headers = [("Content-Type", "application/json")]
        if let key { headers.append(("Authorization", "Bearer \(key)")) }
        let response: HTTPResponse
        do {
            response = try await http.execute(HTTPRequest(method: .post, url: url, headers: HTTPHeaders(headers), body: Array(body.utf8),
                                                          timeout: .seconds(20)))
        } catch {
            throw JobError.transient("the LLM endpoint was not reached: \(error)")
        }
        guard (200..<300).contains(response.status) else { throw JobError.transient("HTTP \(response.status) from the LLM endpoint") }
        guard case .array(let choices)? = JSONValue.parse(response.bodyString)?["choices"],
              let answer = choices.first?["message"]?["content"]?.stringValue else {
            throw JobError.transient("the LLM endpoint's answer has no choices[0].message.content")
        }
        let word = answer.trimmingCharacters(in: .whitespacesAndNewlines.union(.punctuationCharacters)).lowercased()
        guard let mailClass = MailClass(rawValue: word) else { throw JobError.transient("the LLM answered \(answer.prefix(100)), not a class") }
        return mailClass
    }
}
