"""repo.secrets on real temporary git repositories: leaks found in the tree and in history, never shown.

Credential-shaped values are assembled at run time, so this file itself holds none (the pre-commit hook
greps for them). AWS's documented example keys are placeholders, reported by nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pipectl.checks.repo_secrets import RepoSecrets

from pipectl.config import ConfigSource, PipelineConfig
from pipectl.interface import Context
from pipectl.model import DoctorResult, Status
from pipectl.redact import redactor
from pipectl.report import json as json_report
from pipectl.report import markdown as markdown_report
from pipectl.runner import run_checks

AWS_KEY_ID = "AKIA" + "Q7WM2XPH" + "D3NF5JC0"
AWS_SECRET = "Jc0Ga8Rt/Vb2Kp9Lm4Zr" + "+Tw1Ys6Hd3Nf5Jc0GaQz"
MODAL_ID = "ak-" + "Vb2Kp9Lm" * 3
MODAL_SECRET = "as-" + "Tw1Ys6Hd" * 3
PREFECT = "pnu_" + "Qz7Wm2Xp" * 4 + "Hd3N"
STRIPE = "sk_" + "live_" + "Jc0Ga8Rt" * 3
DB_PASSWORD = "Pw9" + "Xk2Vm7Qz4Rt"
PEM_BODY = "MIIEow" + "IBAAKCAQEAx7Vb2Kp9Lm4Zr8Tw1Ys6Hd3Nf5Jc0GaQz7Wm2Xp"
PEM = "\n".join(["-" * 5 + "BEGIN RSA " + "PRIVATE KEY" + "-" * 5, PEM_BODY, PEM_BODY[::-1],
                 "-" * 5 + "END RSA " + "PRIVATE KEY" + "-" * 5, ""])  # fmt: skip
PLANTED = [AWS_KEY_ID, AWS_SECRET, MODAL_ID, MODAL_SECRET, PREFECT, STRIPE, DB_PASSWORD, PEM_BODY]

CREDS = f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\n"
MODAL = f'[modal]\ntoken_id = "{MODAL_ID}"\ntoken_secret = "{MODAL_SECRET}"\n'
PLACEHOLDERS = 'api_key = "env:PREFECT_API_KEY"\ntoken_secret = "<REDACTED>"\npassword = "${DB_PASSWORD}"\n'
CODE = "import os\n\nAPI_KEY = os.environ['API_KEY']\nfor key in keys:\n    print(key)\n"
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
}  # fmt: skip


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, env=GIT_ENV, capture_output=True, check=True
    )
    return done.stdout.decode()


def make_repo(
    root: Path, commits: list[dict[str, str | bytes | None]], untracked: dict[str, str] | None = None
) -> Path:
    """A repository whose commits write (or, for None, delete) files in order; then untracked files."""
    git(root, "init", "-q", "-b", "main")
    for number, files in enumerate(commits, 1):
        for name, content in files.items():
            path = root / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        git(root, "add", "-A")
        git(root, "commit", "-q", "--allow-empty", "-m", f"step {number}")
    for name, content in (untracked or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


def doctor(path: Path, timeout: float = 10, **repo) -> DoctorResult:
    config = PipelineConfig(repo={"path": str(path), **repo})
    return run_checks([RepoSecrets], Context(config=config, timeout=timeout))


def outcome(result: DoctorResult) -> list[tuple]:
    return [
        (f.subject, f.status.value, f.evidence.get("in_working_tree"), f.evidence.get("still_in_history"))
        for f in result.findings
    ]


OK = [("", "ok", None, None)]
CASES = {
    "clean repository": ([{"README.md": "# pipeline\n", "app.py": CODE}], {}, {}, OK),
    "committed and still there": ([{"deploy/.env": CREDS}], {}, {}, [("deploy/.env", "fail", True, True)]),
    "committed, then deleted": (
        [{"deploy/.env": CREDS, "app.py": CODE}, {"deploy/.env": None}],
        {},
        {},
        [("deploy/.env", "fail", False, True)],
    ),
    "edited out of a file that stays": (
        [
            {"settings.py": f'DB_PASSWORD = "{DB_PASSWORD}"\n'},
            {"settings.py": "DB_PASSWORD = os.environ['X']\n"},
        ],
        {},
        {},
        [("settings.py", "fail", False, True)],
    ),
    "untracked and not ignored": (
        [{"app.py": CODE}],
        {"local.env": CREDS},
        {},
        [("local.env", "warn", True, False)],
    ),
    "untracked but ignored": ([{".gitignore": "*.env\n"}], {"local.env": CREDS}, {}, OK),
    "placeholders only": (
        [{"pipectl.toml": PLACEHOLDERS, ".env.example": "AWS_SECRET_ACCESS_KEY=your-key-here\n"}],
        {},
        {},
        OK,
    ),
    "history not scanned": ([{"deploy/.env": CREDS}, {"deploy/.env": None}], {}, {"history": False}, OK),
    "older than max_commits": (
        [{"deploy/.env": CREDS}, {"deploy/.env": None}, {"a.txt": "1\n"}, {"b.txt": "2\n"}],
        {},
        {"max_commits": 2},
        OK,
    ),
    "older than max_commits, still in the tree": (
        [{"deploy/.env": CREDS}, {"a.txt": "1\n"}, {"b.txt": "2\n"}],
        {},
        {"max_commits": 2},
        [("deploy/.env", "fail", True, True)],
    ),
    "history not scanned, still in the tree": (
        [{"deploy/.env": CREDS}],
        {},
        {"history": False},
        [("deploy/.env", "fail", True, True)],
    ),
    "binary and oversized files": (
        [{"blob.bin": b"\x00\x01" + CREDS.encode(), "huge.txt": CREDS + "x" * (1 << 20)}],
        {},
        {},
        OK,
    ),
    "every kind at once": (
        [
            {
                "keys/deploy.pem": PEM,
                "modal.toml": MODAL,
                "billing.py": f'stripe.api_key = "{STRIPE}"\n',
                "pipectl.toml": f'[prefect]\napi_key = "{PREFECT}"\n',
                "app.env": f"DATABASE_URL=postgresql://app:{DB_PASSWORD}@db.internal/app\n",
            }
        ],
        {},
        {},
        [
            (name, "fail", True, True)
            for name in ("app.env", "billing.py", "keys/deploy.pem", "modal.toml", "pipectl.toml")
        ],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_repo_secrets(case, tmp_path):
    commits, untracked, options, expected = CASES[case]
    result = doctor(make_repo(tmp_path, commits, untracked), **options)
    assert outcome(result) == expected
    assert_nothing_leaks(result)


def test_a_deleted_file_is_reported_with_its_commit_and_the_history_purge(tmp_path):
    repo = make_repo(tmp_path, [{"deploy/.env": CREDS, "app.py": CODE}, {"deploy/.env": None}])
    added = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    [finding] = doctor(repo).findings
    assert finding.status is Status.FAIL and finding.severity.value == "P1" and finding.component == "repo"
    assert finding.evidence["rules"] == ["AWS Access Key", "Secret assigned to AWS_SECRET_ACCESS_KEY"]
    assert finding.evidence["lines"] == [1, 2]
    assert finding.evidence["commits"] == [added[:12]]
    assert "deleted, but still in git history" in finding.summary
    assert finding.advice.startswith("Rotate the credentials first")
    assert finding.fix[0] == f"git -C {repo} filter-repo --force --invert-paths --path deploy/.env"


def test_the_fix_for_a_file_that_stays_replaces_the_text(tmp_path):
    repo = make_repo(tmp_path, [{"settings.py": f'DB_PASSWORD = "{DB_PASSWORD}"\n'}])
    [finding] = doctor(repo).findings
    assert "--replace-text" in finding.advice and finding.fix == ()


def test_a_leak_on_another_branch_is_found(tmp_path):
    repo = make_repo(tmp_path, [{"app.py": CODE}])
    git(repo, "checkout", "-q", "-b", "experiment")
    (repo / "modal.toml").write_text(MODAL)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "try modal")
    git(repo, "checkout", "-q", "main")
    assert outcome(doctor(repo)) == [("modal.toml", "fail", False, True)]


def test_a_folder_that_is_no_repository_is_skipped(tmp_path):
    (tmp_path / "deploy.env").write_text(CREDS)
    [finding] = doctor(tmp_path).findings
    assert finding.status is Status.SKIPPED
    assert "not inside a git repository" in finding.summary


def test_an_empty_repository_is_clean(tmp_path):
    git(tmp_path, "init", "-q")
    assert outcome(doctor(tmp_path)) == OK


def test_the_repository_defaults_to_the_config_files_folder(tmp_path):
    repo = make_repo(tmp_path, [{"deploy/.env": CREDS}])
    config = PipelineConfig()
    config._source = ConfigSource(path=str(repo / "pipectl.toml"))
    result = run_checks([RepoSecrets], Context(config=config, timeout=10))
    assert outcome(result) == [("deploy/.env", "fail", True, True)]


def test_a_subfolder_scans_the_whole_repository(tmp_path):
    repo = make_repo(tmp_path, [{"deploy/.env": CREDS, "services/api/app.py": CODE}])
    assert outcome(doctor(repo / "services" / "api")) == [("deploy/.env", "fail", True, True)]


def test_hundreds_of_commits_scan_quickly(tmp_path):
    """500 commits of 40 lines, one leak in the middle; built with fast-import (commits take seconds)."""
    git(tmp_path, "init", "-q", "-b", "main")
    stream = []
    for number in range(500):
        lines = [f"value_{number}_{i} = compute({i})  # key {i}" for i in range(40)]
        if number == 250:
            lines[7] = f"MODAL_TOKEN_SECRET={MODAL_SECRET}"
        data = ("\n".join(lines) + "\n").encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(f"committer t <t@example.invalid> {1_700_000_000 + number} +0000\n".encode())
        stream.append(b"data 4\nstep\n")
        stream.append(
            f"M 100644 inline src/module_{number % 50}.py\ndata {len(data)}\n".encode() + data + b"\n"
        )
    git(tmp_path, "fast-import", "--quiet", stdin=b"".join(stream))
    git(tmp_path, "checkout", "-q", "-f", "main")
    result = doctor(tmp_path)
    assert [(f.subject, f.evidence["lines"]) for f in result.findings] == [("src/module_0.py", [8])]


def assert_nothing_leaks(result: DoctorResult) -> None:
    """No 4-character piece of any planted value in any rendering, before redaction."""
    rendered = json_report.render(result) + markdown_report.render(result)
    json.loads(json_report.render(result))
    leaked = sorted({v[i : i + 4] for v in PLANTED for i in range(len(v) - 3) if v[i : i + 4] in rendered})
    assert leaked == [], f"pieces of planted secrets in the report: {leaked}"
    for finding in result.findings:
        if finding.status in (Status.FAIL, Status.WARN) and not finding.subject.startswith("("):
            assert finding.evidence["hits"] and all("= ****" in hit for hit in finding.evidence["hits"])


def test_found_values_are_registered_with_the_redactor(tmp_path):
    files = {
        "a.env": CREDS,
        "modal.toml": MODAL,
        "keys/deploy.pem": PEM,
        "pipectl.toml": f'api_key = "{PREFECT}"\n',
    }
    repo = make_repo(
        tmp_path, [files, dict.fromkeys(files)]
    )  # committed, then deleted: found in history only
    result = doctor(repo)
    assert {f.subject for f in result.findings} == set(files)
    for value in (AWS_KEY_ID, AWS_SECRET, MODAL_ID, MODAL_SECRET, PREFECT, PEM_BODY):
        masked = redactor(f"leaked: {value}")  # a public prefix (`AKIA`, `ak-`) may stay
        assert masked.startswith("leaked: ") and masked.endswith("****") and value[-8:] not in masked


def test_a_scan_cut_short_says_so_instead_of_claiming_clean(tmp_path, monkeypatch):
    import pipectl.checks.repo_secrets as module

    repo = make_repo(tmp_path, [{"app.py": CODE, "deploy/.env": CREDS}])
    monkeypatch.setattr(module, "_BUDGET", -1.0)  # the deadline has passed before the scan starts
    [finding] = doctor(repo).findings
    assert (finding.status, finding.subject) == (Status.WARN, "(incomplete scan)")
    assert "0 of 2 files scanned" in finding.summary and "--timeout" in finding.fix[0]


def test_a_secret_committed_before_the_scanned_commits_is_committed_not_pending(tmp_path):
    """Its adding commit is older than `max_commits`, but HEAD holds it: a FAIL, not "not committed yet"."""
    repo = make_repo(tmp_path, [{"deploy/.env": CREDS}, {"a.txt": "1\n"}, {"b.txt": "2\n"}])
    result = doctor(repo, max_commits=1)
    [finding] = result.findings
    assert (finding.status, finding.severity.value) == (Status.FAIL, "P1")
    assert "not committed yet" not in finding.summary and finding.evidence["committed_at_head"] is True
    assert finding.evidence["commits"] == [] and "Rotate the credentials" in finding.advice
    assert_nothing_leaks(result)


def test_a_secret_only_in_the_working_copy_of_a_tracked_file_is_not_committed_yet(tmp_path):
    repo = make_repo(tmp_path, [{"settings.py": "DEBUG = False\n"}, {"a.txt": "1\n"}])
    (repo / "settings.py").write_text(f'DEBUG = False\nDB_PASSWORD = "{DB_PASSWORD}"\n')
    for options in ({}, {"max_commits": 1}, {"history": False}):
        [finding] = doctor(repo, **options).findings
        assert (finding.subject, finding.status, finding.severity.value) == ("settings.py", Status.WARN, "P2")
        assert "not committed yet" in finding.summary and finding.evidence["committed_at_head"] is False


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_an_unreadable_object_is_reported_and_the_rest_of_the_history_still_scanned(tmp_path, damage):
    repo = make_repo(
        tmp_path,
        [
            {"old.env": f"MODAL_TOKEN_SECRET={MODAL_SECRET}\n"},
            {"notes.txt": "nothing to see\n"},
            {"new.env": f"MODAL_TOKEN_ID={MODAL_ID}\n"},
            {"old.env": None, "notes.txt": None},  # a working-tree copy would be read instead of the blob
        ],
    )
    blob = git(repo, "rev-parse", "HEAD~1:notes.txt").strip()
    stored = repo / ".git" / "objects" / blob[:2] / blob[2:]
    stored.chmod(0o644)
    if damage == "missing":
        stored.unlink()
    else:
        stored.write_bytes(b"this is not a zlib stream")
    result = doctor(repo)
    assert outcome(result) == [
        ("new.env", "fail", True, True),
        ("old.env", "fail", False, True),  # added before the damaged commit: still found
        ("(unreadable git objects)", "warn", None, None),
    ]
    warning = result.findings[-1]
    assert warning.evidence["unreadable_objects"] == 1 and warning.evidence["objects"] == [blob]
    assert "1 git object(s) could not be read" in warning.summary and warning.evidence["commits_scanned"] == 3
    assert_nothing_leaks(result)


def test_an_unreadable_object_in_a_clean_repository_is_no_clean_bill(tmp_path):
    steps = [{"app.py": CODE}, {"notes.txt": "nothing to see\n"}, {"b.txt": "2\n", "notes.txt": None}]
    repo = make_repo(tmp_path, steps)  # no working-tree copy of notes.txt: its blob must be read
    blob = git(repo, "rev-parse", "HEAD~1:notes.txt").strip()
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    assert outcome(doctor(repo)) == [("(unreadable git objects)", "warn", None, None)]


def test_an_unreadable_committed_copy_of_a_leaking_file_counts_as_committed(tmp_path):
    repo = make_repo(tmp_path, [{"deploy/.env": CREDS}, {"a.txt": "1\n"}])
    blob = git(repo, "rev-parse", "HEAD:deploy/.env").strip()
    stored = repo / ".git" / "objects" / blob[:2] / blob[2:]
    stored.chmod(0o644)
    stored.write_bytes(b"this is not a zlib stream")
    result = doctor(repo, max_commits=1)
    assert outcome(result) == [
        ("deploy/.env", "fail", True, True),  # its committed copy cannot be read: assume the worst
        ("(unreadable git objects)", "warn", None, None),
    ]
    assert result.findings[-1].evidence["objects"] == [blob]


def test_an_unreadable_tree_skips_its_commit_and_still_counts_the_leak_as_committed(tmp_path):
    repo = make_repo(tmp_path, [{"deploy/.env": CREDS}, {"a.txt": "1\n"}])
    tree = git(repo, "rev-parse", "HEAD:deploy").strip()
    (repo / ".git" / "objects" / tree[:2] / tree[2:]).unlink()
    result = doctor(repo)
    assert outcome(result) == [
        ("deploy/.env", "fail", True, True),
        ("(unreadable git objects)", "warn", None, None),
    ]
    assert result.findings[-1].evidence["objects"] == [tree]


def test_a_leak_in_the_commit_an_unreadable_blob_cuts_short_is_still_found(tmp_path):
    """git stops that commit's diff at the blob it cannot read: the files it showed before are reported."""
    repo = make_repo(tmp_path, [{"a.env": f"MODAL_TOKEN_SECRET={MODAL_SECRET}\n", "b.txt": "notes\n"},
                                {"a.env": None, "b.txt": None}])  # fmt: skip
    blob = git(repo, "rev-parse", "HEAD~1:b.txt").strip()
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    result = doctor(repo)
    assert outcome(result) == [
        ("a.env", "fail", False, True),
        ("(unreadable git objects)", "warn", None, None),
    ]
    assert result.findings[-1].evidence["objects"] == [blob]
    assert_nothing_leaks(result)
