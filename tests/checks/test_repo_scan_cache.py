"""repo.secrets remembers what it found clean: a second scan reads only what is new, finds the same
credentials (and masks them again), and its cache never holds anything a credential could be recovered from.

Credentials are drawn when the test runs, so neither this file nor the cache could hold them by chance.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import string
import time
from pathlib import Path

import pytest

from pipectl.connectors import scan_cache
from pipectl.model import DoctorResult, Status
from pipectl.redact import redactor
from pipectl.repo_scan import RepoScan, scanner_version
from pipectl.report import json as json_report
from pipectl.report import markdown as markdown_report
from tests.checks.test_repo_secrets import CODE, doctor, git, make_repo

_ALNUM = string.ascii_letters + string.digits


def draw(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@pytest.fixture
def leaked() -> dict[str, str]:
    return {
        "aws_id": "AKIA" + draw(string.ascii_uppercase + string.digits, 16),
        "modal": "as-" + draw(_ALNUM, 24),
        "password": draw(_ALNUM, 18),
    }


def creds(leaked: dict[str, str]) -> str:
    return f"AWS_ACCESS_KEY_ID={leaked['aws_id']}\nMODAL_TOKEN_SECRET={leaked['modal']}\n"


def clean_files(count: int, version: int = 0) -> dict[str, str | bytes | None]:
    return {f"src/module_{n}.py": f"{CODE}\nVERSION = {version}  # {n}\n" for n in range(count)}


def cache_files() -> list[Path]:
    return sorted((Path(os.environ["PIPECTL_STATE_DIR"]) / "repo-scan").glob("*.json"))


def counts(result: DoctorResult) -> tuple[int, int]:
    evidence = result.findings[0].evidence
    return evidence["blobs_scanned"], evidence["blobs_skipped_clean"]


def report(result: DoctorResult) -> list[tuple]:
    keys = ("lines", "commits", "in_working_tree", "committed_at_head")
    return [(f.subject, f.status.value, *(f.evidence.get(key) for key in keys)) for f in result.findings]


def rendered(result: DoctorResult) -> str:
    return json_report.render(result) + markdown_report.render(result)


def test_a_second_scan_skips_clean_blobs_and_still_finds_and_masks_the_secret(tmp_path, leaked):
    repo = make_repo(tmp_path, [clean_files(6), {"deploy/.env": creds(leaked)}, clean_files(6, version=1)])
    first = doctor(repo)
    added = git(repo, "rev-parse", "HEAD~1").strip()[:12]
    assert report(first) == [("deploy/.env", "fail", [1, 2], [added], True, True)]
    scanned, skipped = counts(first)
    assert scanned >= 13  # 12 versions of the modules, the .env file (the working tree's: the same blobs)

    redactor.clear()  # as a new process starts: nothing registered
    second = doctor(repo)
    assert report(second) == report(first)
    assert counts(second) == (2, scanned + skipped - 2)  # only the .env file, in the tree and its commit
    for value in (leaked["aws_id"], leaked["modal"]):
        assert value not in rendered(second) and value[-8:] not in redactor(f"leaked: {value}")


def test_a_commit_adding_a_secret_after_a_cached_scan_is_found(tmp_path, leaked):
    repo = make_repo(tmp_path, [clean_files(4), clean_files(4, version=1)])
    assert doctor(repo).findings[0].status is Status.OK
    settings = repo / "src" / "module_2.py"
    settings.write_text(settings.read_text() + f'DB_PASSWORD = "{leaked["password"]}"\n')
    git(repo, "commit", "-q", "-am", "configure the database")
    result = doctor(repo)
    [finding] = result.findings
    head = git(repo, "rev-parse", "HEAD").strip()
    assert (finding.subject, finding.status) == ("src/module_2.py", Status.FAIL)
    assert finding.evidence["commits"] == [head[:12]]
    assert counts(result) == (2, 3 + 4 + 4)  # the new blob, in the tree and its commit; the rest known clean
    assert leaked["password"] not in rendered(result)


def test_a_secret_removed_from_a_file_leaves_its_later_versions_known_clean(tmp_path, leaked):
    """The version after the leak is read whole once to learn it is clean; later edits then need only
    their own lines, and a second scan only the change that added the credential."""
    module = "src/module_0.py"
    leak = f'{CODE}\nDB_PASSWORD = "{leaked["password"]}"\n'
    steps = [{module: CODE}, {module: leak}, {module: CODE + "\n# fixed\n"}, {"a.txt": "1\n"}]
    repo = make_repo(tmp_path, steps)
    first = doctor(repo)
    assert report(first)[0][:2] == (module, "fail")
    git(repo, "commit", "-q", "--allow-empty", "-m", "nothing")  # new refs: the history is listed again
    redactor.clear()
    second = doctor(repo)
    assert report(second) == report(first)
    assert counts(second) == (1, 5)  # the leaking change; both tree files, the three other changes
    assert leaked["password"][-8:] not in redactor(leaked["password"])


def test_a_file_that_keeps_its_secret_through_later_edits_is_never_remembered_clean(tmp_path, leaked):
    """Its later versions add only clean lines, yet hold the credential: no run may take them for clean."""
    module = "src/settings.py"
    leak = f'{CODE}\nDB_PASSWORD = "{leaked["password"]}"\n'
    steps = [{module: CODE}, {module: leak}, {module: leak + "# one\n"}, {module: leak + "# two\n"}]
    repo = make_repo(tmp_path, steps)
    first = doctor(repo)
    assert [(f.subject, f.evidence["in_working_tree"]) for f in first.findings] == [(module, True)]
    git(repo, "commit", "-q", "--allow-empty", "-m", "new refs")
    for _ in range(2):  # the history listed again, then not even that
        assert report(doctor(repo)) == report(first)


def test_changing_the_scanners_version_forgets_everything(tmp_path, leaked):
    repo = make_repo(tmp_path, [clean_files(3), {"deploy/.env": creds(leaked)}])
    scanned, skipped = counts(doctor(repo))
    [cache] = cache_files()
    record = json.loads(cache.read_text())
    assert record["version"] == scanner_version()
    cache.write_text(json.dumps({**record, "version": "an older scanner"}))
    assert counts(doctor(repo)) == (scanned, skipped)  # all of it scanned again, as the first time
    assert json.loads(cache.read_text())["version"] == scanner_version()
    blob = git(repo, "rev-parse", "HEAD:src/module_0.py").strip()
    assert scan_cache.load(repo, scanner_version()).is_clean(blob, "quoted")  # read as a .py file
    assert not scan_cache.load(repo, "another version").is_clean(blob, "quoted")


DAMAGED = {
    "empty": b"",
    "not JSON": b"not json",
    "cut short": b'{"format": 1',
    "not an object": b"[1, 2]",
    "clean not ids": b'{"format": 1, "version": "V", "clean": 7, "walk": null, "files": {}}',
    "walk half there": b'{"format": 1, "version": "V", "clean": "", "walk": {"refs": 1}, "files": {}}',
    "stamp too short": b'{"format": 1, "version": "V", "clean": "", "walk": null, "files": {"a": [1]}}',
    "not UTF-8": b"\xff\xfe\x00",
}


@pytest.mark.parametrize("damage", DAMAGED.values(), ids=list(DAMAGED))
def test_a_corrupt_cache_is_ignored_and_replaced(tmp_path, leaked, damage):
    repo = make_repo(tmp_path, [clean_files(3), {"deploy/.env": creds(leaked)}])
    fresh = doctor(repo)
    [cache] = cache_files()
    cache.write_bytes(damage.replace(b'"V"', json.dumps(scanner_version()).encode()))
    again = doctor(repo)
    assert report(again) == report(fresh) and counts(again) == counts(fresh)  # nothing skipped, no error
    assert json.loads(cache.read_text())["version"] == scanner_version()  # written anew


def test_the_cache_holds_no_secret_nor_anything_to_recover_one_from(tmp_path, leaked):
    env = creds(leaked) + f"DATABASE_URL=postgresql://app:{leaked['password']}@db.internal/app\n"
    settings = f'DB_PASSWORD = "{leaked["password"]}"\n'
    steps = [
        clean_files(3),
        {"deploy/.env": env, "settings.py": settings},
        {"deploy/.env": None},
        clean_files(3, 1),
    ]
    repo = make_repo(tmp_path, steps)
    leaking_blobs = [
        git(repo, "rev-parse", f"HEAD~2:{name}").strip() for name in ("deploy/.env", "settings.py")
    ]
    first = doctor(repo)
    assert {f.subject for f in first.findings} == {"deploy/.env", "settings.py"}
    doctor(repo)
    git(repo, "commit", "-q", "--allow-empty", "-m", "new refs")
    doctor(repo)
    [cache] = cache_files()
    stored = cache.read_bytes()
    for value in leaked.values():
        fragments = {value[i : i + 8] for i in range(len(value) - 7)}
        assert not [piece for piece in fragments if piece.encode() in stored]
        for digest in (hashlib.sha1, hashlib.sha256, hashlib.md5):
            assert digest(value.encode()).hexdigest()[:12].encode() not in stored
    for blob in leaking_blobs:  # the id of a blob with a credential is a hash of it: never kept
        assert blob.encode() not in stored
    assert json.loads(stored)["walk"]["hits"]  # what is kept of them: where the findings say they are


def test_the_cache_is_private_and_written_whole(tmp_path):
    repo = make_repo(tmp_path, [clean_files(2)])
    doctor(repo)
    [cache] = cache_files()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary file left beside it


def test_a_state_folder_that_cannot_be_written_leaves_the_scan_as_it_is(tmp_path, monkeypatch, leaked):
    blocker = tmp_path / "state-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("PIPECTL_STATE_DIR", str(blocker / "state"))
    (tmp_path / "repo").mkdir()
    repo = make_repo(tmp_path / "repo", [clean_files(2), {"deploy/.env": creds(leaked)}])
    first, second = doctor(repo), doctor(repo)
    assert [(f.subject, f.status) for f in second.findings] == [("deploy/.env", Status.FAIL)]
    assert counts(second) == counts(first)  # nothing remembered: the second run reads all the first did
    assert not blocker.read_text()


def test_a_working_tree_file_whose_stamp_is_unchanged_is_not_read_and_a_changed_one_is(tmp_path, leaked):
    """Stamps are remembered only once settled; `settled_ns=0` makes a file settled at once."""
    repo = make_repo(tmp_path, [{"app.py": CODE, "notes.md": "# notes\n"}])

    def scan() -> RepoScan:
        run = RepoScan(repo, scan_cache.load(repo, scanner_version()), settled_ns=0)
        run.tree(time.monotonic() + 10, 10)
        run.cache.save(whole_history=False)
        return run

    scan()
    assert sorted(json.loads(cache_files()[0].read_text())["files"]) == ["app.py", "notes.md"]
    unchanged = scan()
    assert (unchanged.files_scanned, unchanged.blobs_scanned, unchanged.blobs_skipped) == (2, 0, 2)
    (repo / "notes.md").write_text(f"# notes\nMODAL_TOKEN_SECRET={leaked['modal']}\n")
    changed = scan()
    assert (changed.blobs_scanned, sorted(changed.by_file)) == (1, ["notes.md"])
    assert "notes.md" not in json.loads(cache_files()[0].read_text())["files"]  # a file with a hit: not kept


def test_the_cache_keeps_the_most_recently_scanned_repositories_only(tmp_path):
    for number in range(scan_cache.MAX_REPOSITORIES + 5):
        cache = scan_cache.load(tmp_path / f"repository-{number}", "a version")
        cache.add_clean(f"{number:040x}")
        cache.save(whole_history=False)
        os.utime(cache.path, ns=(number * 10**9, number * 10**9))  # written one after the other
    kept = cache_files()
    assert len(kept) == scan_cache.MAX_REPOSITORIES
    last = scan_cache.load(tmp_path / f"repository-{scan_cache.MAX_REPOSITORIES + 4}", "a version")
    assert last.path in kept and last.is_clean(f"{scan_cache.MAX_REPOSITORIES + 4:040x}")
    assert not scan_cache.load(tmp_path / "repository-0", "a version").is_clean(f"{0:040x}")
