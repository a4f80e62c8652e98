#!/usr/bin/env python3
"""Independent checks of what rollout-guard prints for CI and serves over its API.

The Rust tests (tests/formats.rs, tests/api.rs) leave their outputs under one directory:

  sarif/*.sarif          SARIF logs of `check` and `test`: validated against the SARIF 2.1.0
                         JSON schema shipped with Microsoft's SARIF Multitool, then with the
                         Multitool's own `validate` (schema and spec rules); any error fails.
  junit/*.xml            JUnit reports: parsed with junitparser (what CI plugins use), and the
                         counts on every <testsuite> must match its test cases.
  openapi/openapi.json   the served OpenAPI description: validated as OpenAPI 3 by
                         openapi-spec-validator.
  openapi/responses/*.json  real responses recorded by the API tests, each
                         {"operation": "GET /v1/policies", "status": 200, "body": {...}}:
                         validated against the schema the description gives for it.
  reports/*.json         policy reports printed by `rollout-guard audit -o json` (a v1 List,
                         tests/audit_cli.rs): each item validated with jsonschema against the
                         openAPIV3Schema of its CRD in ../shared/crds (OpenReports, wgpolicyk8s),
                         plus no field the structural schema does not declare (the API server
                         would prune it). Skipped, saying so, when ../shared/crds is absent.

Usage: validate_formats.py DIR [--multitool PATH]. Last line: "formats: N passed, M failed".
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    root = Path(args[0])
    multitool = None
    if "--multitool" in args:
        multitool = Path(args[args.index("--multitool") + 1])
    passed, failed = 0, 0

    def outcome(name: str, problems: list) -> None:
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for problem in problems:
                print(f"  {problem}")
        else:
            passed += 1
            print(f"ok   {name}")

    sarif_files = sorted((root / "sarif").glob("*.sarif"))
    junit_files = sorted((root / "junit").glob("*.xml"))
    openapi_file = root / "openapi" / "openapi.json"
    report_files = sorted((root / "reports").glob("*.json"))
    if not sarif_files and not junit_files and not openapi_file.exists() and not report_files:
        print(f"formats: nothing to check under {root} (run cargo test first)")
        return 1

    schema = None
    if multitool is not None:
        schema_path = multitool.parent / "sarif-2.1.0.json"
        schema = json.loads(schema_path.read_text())
    for path in sarif_files:
        outcome(f"sarif {path.name}", check_sarif(path, schema, multitool))
    for path in junit_files:
        outcome(f"junit {path.name}", check_junit(path))
    if openapi_file.exists():
        description = json.loads(openapi_file.read_text())
        outcome("openapi description", check_openapi(description))
        for path in sorted((root / "openapi" / "responses").glob("*.json")):
            outcome(f"openapi response {path.name}", check_response(description, path))

    if report_files:
        crds = Path(__file__).resolve().parents[2].parent / "shared" / "crds"
        if not crds.is_dir():
            print(f"SKIP policy reports: {crds} is not present, no CRD schemas to check against")
        else:
            schemas = crd_schemas(crds)
            for path in report_files:
                outcome(f"policy reports {path.name}", check_reports(path, schemas))

    print(f"formats: {passed} passed, {failed} failed")
    return 1 if failed else 0


def crd_schemas(crds: Path) -> dict:
    """(apiVersion, kind) -> openAPIV3Schema, for every CRD under `crds`."""
    import yaml

    schemas = {}
    for path in sorted(crds.rglob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def undeclared_fields(value, schema, at: str) -> list:
    """Fields a structural schema does not declare: the API server prunes them silently."""
    problems = []
    if isinstance(value, dict) and isinstance(schema, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            if properties is not None and key in properties:
                problems += undeclared_fields(child, properties[key], f"{at}.{key}")
            elif isinstance(additional, dict):
                problems += undeclared_fields(child, additional, f"{at}.{key}")
            elif properties is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f"{at}.{key}: not declared in the CRD schema (would be pruned)")
    elif isinstance(value, list) and isinstance(schema, dict):
        for index, item in enumerate(value):
            problems += undeclared_fields(item, schema.get("items", {}), f"{at}[{index}]")
    return problems


def check_reports(path: Path, schemas: dict) -> list:
    import jsonschema

    problems = []
    document = json.loads(path.read_text())
    items = document.get("items") if document.get("kind") == "List" else [document]
    if not items:
        return [f"no reports in {path.name}"]
    for index, report in enumerate(items):
        key = (report.get("apiVersion"), report.get("kind"))
        name = f"items[{index}] {key[1]} {report.get('metadata', {}).get('namespace', '')}"
        schema = schemas.get(key)
        if schema is None:
            problems.append(f"{name}: no CRD for {key[0]} {key[1]}")
            continue
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(report), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in error.path)
            problems.append(f"{name}: {where}: {error.message}")
        problems += [f"{name}: {p}" for p in undeclared_fields(report, schema, key[1])]
    return problems


def check_sarif(path: Path, schema, multitool) -> list:
    import jsonschema

    problems = []
    log = json.loads(path.read_text())
    if log.get("version") != "2.1.0":
        problems.append(f"version is {log.get('version')!r}, not 2.1.0")
    if schema is None or multitool is None:
        return problems + ["no SARIF Multitool given (--multitool): cannot validate"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    for error in sorted(validator.iter_errors(log), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.path)
        problems.append(f"schema: {where}: {error.message}")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "validation.sarif"
        run = subprocess.run(
            [str(multitool), "validate", str(path), "-o", str(report)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if run.returncode != 0 or not report.exists():
            return problems + [f"multitool failed ({run.returncode}): {run.stdout}{run.stderr}"]
        validation = json.loads(report.read_text())
        for result in validation["runs"][0].get("results", []):
            level = result.get("level", "warning")
            text = result.get("message", {}).get("text") or json.dumps(result.get("message"))
            if level == "error":
                problems.append(f"multitool {result.get('ruleId')}: {text}")
        notifications = [
            n
            for inv in validation["runs"][0].get("invocations", [])
            for n in inv.get("toolExecutionNotifications", [])
        ]
        for notification in notifications:
            if notification.get("level") == "error":
                problems.append(f"multitool could not read the log: {notification.get('message')}")
    runs = log.get("runs", [])
    if len(runs) != 1:
        problems.append(f"{len(runs)} runs, expected 1")
    else:
        rules = runs[0]["tool"]["driver"].get("rules", [])
        ids = [rule["id"] for rule in rules]
        for index, result in enumerate(runs[0].get("results", [])):
            if result.get("ruleId") not in ids:
                problems.append(f"results[{index}]: rule {result.get('ruleId')} not in tool.driver.rules")
            elif "ruleIndex" in result and ids[result["ruleIndex"]] != result["ruleId"]:
                problems.append(f"results[{index}]: ruleIndex does not point at {result['ruleId']}")
            for location in result.get("locations", []):
                uri = location["physicalLocation"]["artifactLocation"]["uri"]
                if not uri:
                    problems.append(f"results[{index}]: empty artifact URI")
    return problems


def check_junit(path: Path) -> list:
    from junitparser import Error, Failure, JUnitXml, Skipped

    problems = []
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml) if hasattr(xml, "__iter__") else [xml]
    total = 0
    for suite in suites:
        cases = list(suite)
        total += len(cases)
        counted = {"failures": 0, "errors": 0, "skipped": 0}
        for case in cases:
            if not case.name:
                problems.append(f"{suite.name}: a test case without a name")
            for result in case.result:
                if isinstance(result, Failure):
                    counted["failures"] += 1
                elif isinstance(result, Error):
                    counted["errors"] += 1
                elif isinstance(result, Skipped):
                    counted["skipped"] += 1
        if suite.tests != len(cases):
            problems.append(f"{suite.name}: tests={suite.tests} but {len(cases)} test cases")
        for field, count in counted.items():
            if getattr(suite, field) != count:
                problems.append(f"{suite.name}: {field}={getattr(suite, field)} but {count} counted")
    if total == 0:
        problems.append("no test cases")
    return problems


def check_openapi(description) -> list:
    from openapi_spec_validator import validate

    try:
        validate(description)
    except Exception as error:  # the validator raises one of several exception types
        return [f"not valid OpenAPI: {error}"]
    if not str(description.get("openapi", "")).startswith("3."):
        return [f"openapi is {description.get('openapi')!r}, not 3.x"]
    return []


def check_response(description, path: Path) -> list:
    from openapi_schema_validator import OAS31Validator, OAS30Validator
    from referencing import Registry, Resource

    recorded = json.loads(path.read_text())
    method, route = recorded["operation"].split(" ", 1)
    operation = description["paths"].get(route, {}).get(method.lower())
    if operation is None:
        return [f"{recorded['operation']} is not in the description"]
    responses = operation.get("responses", {})
    response = responses.get(str(recorded["status"])) or responses.get("default")
    if response is None:
        return [f"{recorded['operation']}: status {recorded['status']} is not described"]
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[-1]
        response = description["components"]["responses"][name]
    content = response.get("content", {}).get("application/json")
    if content is None:
        return [f"{recorded['operation']} {recorded['status']}: no application/json schema"]
    schema = content["schema"]
    validator_class = OAS31Validator if description["openapi"].startswith("3.1") else OAS30Validator
    registry = Registry().with_resource("", Resource.from_contents(description, default_specification=_spec()))
    # Resolve `#/components/...` references against the description itself.
    wrapped = dict(schema)
    wrapped.setdefault("components", description.get("components", {}))
    validator = validator_class(wrapped, registry=registry)
    return [
        f"{'/'.join(str(p) for p in error.path)}: {error.message}"
        for error in validator.iter_errors(recorded["body"])
    ]


def _spec():
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


if __name__ == "__main__":
    sys.exit(main())
