"""Validates the gateway's OpenAPI document with openapi-spec-validator (the OpenAPI 3.0 JSON
Schema plus its semantic checks: unique operation ids, path parameters declared, $refs that
resolve), then a few rules of our own the generic validator does not hold us to.

Usage: python openapi.py PATH_TO_OPENAPI_JSON
(the document the gateway serves at /openapi.json). Needs `openapi-spec-validator` in the
environment. Prints one line per check and, last, "openapi: N passed, M failed"; exits 1 on any
failure.
"""

import json
import pathlib
import re
import sys

from openapi_spec_validator import validate


def own_rules(doc):
    """Our conventions: every operation has an id, a summary and a 2xx; every error status has
    the Error body; every authenticated operation lists 401; mutations taking an
    Idempotency-Key take it as a required header."""
    problems = []
    for path, item in doc.get("paths", {}).items():
        for verb, op in item.items():
            where = f"{verb.upper()} {path}"
            if not op.get("operationId") or not op.get("summary"):
                problems.append(f"{where}: no operationId or summary")
            responses = op.get("responses", {})
            if not any(code.startswith("2") for code in responses):
                problems.append(f"{where}: no success response")
            for code, response in responses.items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if code[0] in "45" and schema.get("$ref") != "#/components/schemas/Error":
                    problems.append(f"{where}: {code} is not an Error")
            public = op.get("security") == []
            if not public and "401" not in responses:
                problems.append(f"{where}: authenticated but no 401")
            for param in op.get("parameters", []):
                if param.get("name") == "Idempotency-Key" and not (
                    param.get("in") == "header" and param.get("required") is True
                ):
                    problems.append(f"{where}: Idempotency-Key is not a required header")
            for name in re.findall(r"\{([^}]+)\}", path):
                if not any(p.get("in") == "path" and p.get("name") == name for p in op.get("parameters", [])):
                    problems.append(f"{where}: path parameter {name} is not declared")
    return problems


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = pathlib.Path(argv[1])
    doc = json.loads(path.read_text(encoding="utf-8"))
    passed = failed = 0

    try:
        validate(doc)
        print("ok   openapi-spec-validator: a valid OpenAPI " + str(doc.get("openapi")) + " document")
        passed += 1
    except Exception as error:  # the validator raises several exception types
        print(f"FAIL openapi-spec-validator: {str(error).splitlines()[0][:300]}")
        failed += 1

    problems = own_rules(doc)
    if problems:
        for problem in problems:
            print(f"FAIL conventions: {problem}")
        failed += 1
    else:
        print("ok   conventions: ids, summaries, Error bodies, 401s, Idempotency-Key headers, path parameters")
        passed += 1

    print(f"openapi: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
