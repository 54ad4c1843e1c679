"""Start-up stays light: the platform client libraries load when remediation first needs them, not before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.config import Config, KubernetesConfig, KubernetesTarget, ServiceConfig
from bot.platforms import Platforms
from tests.fakes.kubernetes_api import FakeKubernetes

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("kubernetes", "boto3", "botocore", "github")


def test_importing_the_app_loads_no_platform_client_library() -> None:
    probe = (
        "import json, sys, bot.app; "
        f"print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in {HEAVY!r})))"
    )
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
    assert json.loads(result.stdout) == []


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
