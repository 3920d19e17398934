"""Checks of the Helm chart that need no cluster, run by `infra/dev test`.

1. `helm lint` (the Helm SDK's own linter) of charts/cobro with its default values and with
   values-production.yaml, each over charts/cobro/ci/lint-values.yaml (the names of the Secrets
   an install must be given; names only, no secret values).
2. The chart runs what the binary serves: the services in values.yaml, their ports, and the
   Deployment's `cobro serve <service>` agree with `cobro services`.

Usage: python chart.py COBRO_BINARY
Prints one line per check and, last, "chart: N passed, M failed"; exits 1 on any failure.
"""

import asyncio
import copy
import pathlib
import shutil
import subprocess
import sys
import tempfile

import helm_sdkpy
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cobro"


def merge(base, over):
    """Values files layer like Helm's: maps merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def lint(values):
    """Lint a copy of the chart whose values.yaml is `values`; the linter's messages."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = pathlib.Path(tmp) / "cobro"
        shutil.copytree(CHART, chart)
        with open(chart / "values.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(values, f, sort_keys=False)
        result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(chart)))
    return result


def lint_failures(result):
    """Warnings and errors of a lint result (severity 2 and 3; 1 is advice such as a missing
    icon). The SDK gives each message's path and severity; its text goes to the log."""
    result = result or {}
    failures = [
        f"{ {2: 'WARNING', 3: 'ERROR'}.get(m.get('Severity'), m.get('Severity'))} in {m.get('Path')}"
        for m in result.get("Messages") or []
        if isinstance(m.get("Severity"), int) and m["Severity"] >= 2
    ]
    failures.extend(str(e) for e in result.get("Errors") or [])
    return failures


def served(binary):
    """`cobro services`: name -> port."""
    out = subprocess.run([binary, "services"], check=True, capture_output=True, text=True).stdout
    services = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            services[parts[0]] = int(parts[1].rsplit(":", 1)[1])
    return services


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    results = []

    def check(name, problems):
        results.append(not problems)
        print(f"{'ok  ' if not problems else 'FAIL'} chart: {name}")
        for p in problems:
            print(f"       {p}")

    defaults = load(CHART / "values.yaml")
    names_only = load(CHART / "ci" / "lint-values.yaml")
    production = load(CHART / "values-production.yaml")
    check("helm lint with default values", lint_failures(lint(merge(defaults, names_only))))
    check(
        "helm lint with values-production.yaml",
        lint_failures(lint(merge(merge(defaults, names_only), production))),
    )

    wanted = served(sys.argv[1])
    charted = {name: spec.get("port") for name, spec in (defaults.get("services") or {}).items()}
    problems = []
    for name, port in wanted.items():
        if name not in charted:
            problems.append(f"`cobro serve {name}` has no entry in values.yaml services")
        elif charted[name] != port:
            problems.append(f"services.{name}.port is {charted[name]}, `cobro services` says {port}")
    for name in charted:
        if name not in wanted:
            problems.append(f"values.yaml services.{name} is not a service `cobro serve` accepts")
    check("services and ports match `cobro services`", problems)

    # The templates build each command from the services map's key, as `cobro serve` and
    # `cobro migrate` take the service name.
    deployment = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    jobs = (CHART / "templates" / "migrate-job.yaml").read_text(encoding="utf-8")
    problems = []
    if "range $name, $svc := .Values.services" not in deployment:
        problems.append("templates/deployment.yaml does not make one Deployment per entry of .Values.services")
    if 'args: ["serve", {{ $name | quote }}]' not in deployment:
        problems.append("templates/deployment.yaml does not run `cobro serve <service>`")
    if 'args: ["migrate", {{ $name | quote }}]' not in jobs:
        problems.append("templates/migrate-job.yaml does not run `cobro migrate <service>`")
    for name, spec in (defaults.get("services") or {}).items():
        if "database" in (spec or {}) and name not in wanted:
            problems.append(f"services.{name} has a database but is no service `cobro migrate` knows")
    check("the Deployments run `cobro serve <service>`, the hooks `cobro migrate <service>`", problems)

    passed = sum(results)
    print(f"chart: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
