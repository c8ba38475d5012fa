# Checks of our own for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).
import json

import schemathesis


@schemathesis.check
def problem_json_errors(ctx, response, case):
    """Every 4xx and 5xx answer is an RFC 9457 problem: application/problem+json with a JSON
    object body whose `status` is the response's status and whose `title` is a string."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != "application/problem+json":
        raise AssertionError(
            f"{response.status_code} answered with Content-Type {content_type!r}, not application/problem+json"
        )
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{response.status_code} problem body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise AssertionError(f"{response.status_code} problem body is not a JSON object")
    if body.get("status") != response.status_code:
        raise AssertionError(f"problem status {body.get('status')!r} differs from the response's {response.status_code}")
    if not isinstance(body.get("title"), str) or not body["title"]:
        raise AssertionError(f"{response.status_code} problem has no title")
    return None
