"""Start-up stays light: the platform client libraries load when remediation first needs them, not before, and
production code never loads the sandbox or its Slack emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.core.settings import Config, KubernetesConfig, KubernetesTarget, ServiceConfig
from bot.remediation.platforms import Platforms
from sandbox.fakes.kubernetes_api import FakeKubernetes

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("kubernetes", "boto3", "botocore", "github")
NOT_IN_PRODUCTION = ("sandbox",)


def fresh_interpreter(probe: str) -> Any:
    """What `probe` prints as JSON, run in a new Python process with this checkout on its path."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_importing_the_app_loads_no_platform_client_library_and_no_sandbox() -> None:
    unwanted = HEAVY + NOT_IN_PRODUCTION
    loaded = fresh_interpreter(
        "import json, sys, bot.app, bot.cli, handlers, integrations.pagerduty; "
        f"print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in {unwanted!r})))"
    )
    assert loaded == []


def test_a_client_built_on_first_use_follows_the_config(tmp_path: Path) -> None:
    services = {
        "payments": ServiceConfig(
            oncall="U0PAYONCALL", kubernetes=KubernetesTarget(namespace="prod", deployment="payments")
        )
    }
    with FakeKubernetes() as cluster:
        cluster.create_deployment("prod", "payments", image="registry/app:1.4.1")
        kubeconfig = tmp_path / "kubeconfig"
        cluster.write_kubeconfig(kubeconfig)
        config = Config(
            database_url="",
            services=services,
            dry_run=True,
            kubernetes=KubernetesConfig(kubeconfig=str(kubeconfig)),
        )
        platforms = Platforms(config)
        assert platforms.dry_run
        planned = platforms.plan_scale("payments", 4)
        assert planned.snapshot == {"replicas": 2}
        result = platforms.execute(planned.action_kind, "payments", planned.params, planned.snapshot)
        assert result.dry_run
        assert platforms.kubernetes is platforms.kubernetes
        assert not [r for r in cluster.requests if r[0] == "PATCH"]
        platforms.kubernetes.close()


def test_the_heap_built_at_start_up_is_kept_out_of_the_collectors_way() -> None:
    default_threshold, threshold, frozen = fresh_interpreter(
        "import gc, json, bot.app, handlers; from bot.core.heap import settle_after_startup; "
        "before = gc.get_threshold()[0]; settle_after_startup(); "
        "print(json.dumps([before, gc.get_threshold()[0], gc.get_freeze_count()]))"
    )
    # Everything imported so far (tens of thousands of objects) is frozen, and a request's garbage no longer
    # sets off a collection every 700 allocations.
    assert frozen > 10_000
    assert threshold > default_threshold
