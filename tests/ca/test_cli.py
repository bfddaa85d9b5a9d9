"""The real `eauth` CLI in a subprocess with a brand-new home: issue, show, chain, errors, bulk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.ca.conftest import DATA, make_csr, openssl
from tests.factories import unique_id_number, unique_uscc


def _setup(cli_home, n_staff: int) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    dept = unique_uscc()
    cli_home.run("org", "add", "--name", "省人社厅", "--uscc", dept, "--type", "government", "--dns-suffix", "hrss.example.gov.cn")
    ids = [unique_id_number() for _ in range(n_staff)]
    for i, number in enumerate(ids):
        cli_home.run("person", "add", "--name", f"职工{i}", "--id-number", number, "--department", dept)
    return dept, ids


def test_cli_issue_show_chain_errors_and_bulk(cli_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dept, ids = _setup(cli_home, 4)
    csr_file = tmp_path / "one.csr"
    csr_file.write_bytes(make_csr())
    issued = cli_home.run("cert", "issue", "--profile", "staff", "--csr", str(csr_file), "--subject-id", ids[0])
    assert issued.stdout.startswith("-----BEGIN CERTIFICATE-----") and issued.stdout.rstrip().endswith("-----END CERTIFICATE-----")
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued.stdout)
    chain = cli_home.run("ca", "chain").stdout
    assert chain.count("BEGIN CERTIFICATE") == 2
    issuing_pem, root_pem = tmp_path / "issuing.pem", tmp_path / "root.pem"
    first_end = chain.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")
    issuing_pem.write_text(chain[:first_end])
    root_pem.write_text(chain[first_end:] + "\n")
    verified = openssl("verify", "-CAfile", str(root_pem), "-untrusted", str(issuing_pem), str(leaf))
    assert verified.returncode == 0, verified.stderr
    serial = openssl("x509", "-in", str(leaf), "-noout", "-serial").stdout.strip().split("=")[1].lower()
    shown = json.loads(cli_home.run("--json", "cert", "show", serial).stdout)
    assert shown["status"] == "issued" and shown["profile"] == "staff" and shown["maintenance"][0]["kind"] == "issuance"

    # bad input: exit status ≠ 0, one line with the code, no traceback
    for args, code in (
        (("cert", "issue", "--profile", "staff", "--csr", str(DATA / "truncated.der.csr"), "--subject-id", ids[0]), "csr.truncated"),
        (("cert", "issue", "--profile", "nope", "--csr", str(csr_file), "--subject-id", ids[0]), "ca.unknown_profile"),
        (("cert", "issue", "--profile", "staff", "--csr", str(csr_file), "--subject-id", unique_id_number()), "ca.unknown_subject"),
        (("cert", "issue", "--profile", "server", "--csr", str(csr_file), "--subject-id", dept, "--dns", "www.other.gov.cn"), "ca.dns_not_authorised"),
        (("cert", "issue", "--profile", "staff", "--csr", str(tmp_path / "missing.csr"), "--subject-id", ids[0]), "cli.file_not_found"),
    ):
        done = cli_home.run(*args, check=False)
        assert done.returncode != 0, args
        assert done.stderr.count("\n") == 1 and f"[{code}]" in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)

    # bulk: one file per subject, one of them bad — reported and skipped, the rest issued
    csr_dir = tmp_path / "csrs"
    csr_dir.mkdir()
    for number in ids[1:]:
        (csr_dir / f"{number}.csr").write_bytes(make_csr())
    shutil.copy(DATA / "invalid_signature.der.csr", csr_dir / f"{ids[0]}.der")
    results = tmp_path / "results.jsonl"
    out_dir = tmp_path / "issued"
    done = cli_home.run("cert", "bulk", "--profile", "staff", "--dir", str(csr_dir), "--results", str(results), "--out-dir", str(out_dir), check=False)
    assert done.returncode == 9, done.stderr  # some failed, some issued
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 4
    bad = [r for r in rows if not r["ok"]]
    assert [(r["item"], r["code"]) for r in bad] == [(f"{ids[0]}.der", "csr.bad_signature")]
    good = [r for r in rows if r["ok"]]
    assert len(good) == 3 and len(list(out_dir.glob("*.pem"))) == 3
    for r in good:
        assert json.loads(cli_home.run("--json", "cert", "show", r["serial"]).stdout)["status"] == "issued"
    assert "3 issued, 1 failed of 4" in done.stdout
    audit = cli_home.run("audit", "verify")
    assert "audit chain OK" in audit.stdout


@pytest.mark.slow
def test_cli_bulk_csv_with_worker_processes(cli_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, ids = _setup(cli_home, 6)
    rows = ["subject_id,csr"]
    for i, number in enumerate(ids):
        path = tmp_path / f"r{i}.csr"
        path.write_bytes(make_csr() if i != 3 else (DATA / "garbage.csr").read_bytes())
        rows.append(f"{number},{path.name}")
    rows.append(f"{unique_id_number()},r0.csr")  # not in the registry
    (tmp_path / "staff.csv").write_text("\n".join(rows) + "\n")
    results = tmp_path / "results.jsonl"
    done = cli_home.run("cert", "bulk", "--profile", "staff", "--csv", str(tmp_path / "staff.csv"), "--results", str(results), "--workers", "2", "--batch-size", "2", check=False)
    assert done.returncode == 9, done.stderr
    out = {json.loads(line)["item"]: json.loads(line) for line in results.read_text().splitlines()}
    assert len(out) == 7
    assert out["line 5 (r3.csr)"]["code"] == "csr.malformed"
    assert out["line 8 (r0.csr)"]["code"] == "ca.unknown_subject"
    assert sum(r["ok"] for r in out.values()) == 5
    assert "audit chain OK" in cli_home.run("audit", "verify").stdout
