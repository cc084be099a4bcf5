from __future__ import annotations

from pipeline.ksef_api.problems import ApiProblem, parse_problem


def test_legacy_exception_response_keeps_every_entry() -> None:
    body = {"exception": {"exceptionDetailList": [
        {"exceptionCode": 21405, "exceptionDescription": "Błąd walidacji danych wejściowych.",
         "details": ["fileSize must be > 0"]},
        {"exceptionCode": 21157, "exceptionDescription": "Nieprawidłowy rozmiar części pakietu."},
    ], "referenceNumber": None, "serviceCode": "x"}}
    problem = parse_problem(400, body)
    assert problem.code == 21405
    assert problem.description == "Błąd walidacji danych wejściowych."
    assert problem.details == ("fileSize must be > 0",
                               "[21157] Nieprawidłowy rozmiar części pakietu.")


def test_problem_details_with_errors() -> None:
    body = {"title": "Bad Request", "status": 400, "detail": "Validation failed",
            "errors": [{"code": 21470, "description": "Unknown key", "details": ["key 7"]}]}
    assert parse_problem(400, body) == ApiProblem(21470, "Unknown key",
                                                  ("key 7", "Validation failed"))


def test_too_many_requests_legacy_status_object() -> None:
    body = {"status": {"code": 429, "description": "Too Many Requests",
                       "details": ["Przekroczono limit 20 żądań na minutę."]}}
    assert parse_problem(429, body) == ApiProblem(
        429, "Too Many Requests", ("Przekroczono limit 20 żądań na minutę.",))


def test_forbidden_problem_keeps_reason_code() -> None:
    body = {"title": "Forbidden", "status": 403, "detail": "No permission",
            "reasonCode": "missing-permissions"}
    assert parse_problem(403, body) == ApiProblem(None, "No permission",
                                                  ("reasonCode missing-permissions",))


def test_non_json_and_empty_bodies() -> None:
    assert parse_problem(502, "<html>bad gateway</html>", "Bad Gateway") == ApiProblem(
        None, "Bad Gateway", ("<html>bad gateway</html>",))
    assert parse_problem(503, None) == ApiProblem(None, "HTTP 503")
    assert parse_problem(400, {"exception": {"exceptionDetailList": []}}).description == "HTTP 400"
