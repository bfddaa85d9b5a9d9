"""The real ``eauth`` CLI in a subprocess: seal create, seal pdf, seal records, verify."""

from __future__ import annotations

import json

from tests.factories import unique_uscc
from tests.signing.conftest import DATA


def test_seal_create_pdf_and_verify(cli_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    uscc = unique_uscc()
    cli_home.run("org", "add", "--name", "海南省大数据管理局", "--uscc", uscc, "--type", "government")
    created = json.loads(cli_home.run("--json", "seal", "create", "--name", "电子政务专用章", "--department", uscc).stdout)
    assert created["key_label"].startswith(f"seal/{uscc}/") and created["status"] == "active"
    seal_id = created["id"]
    listed = cli_home.run("seal", "list").stdout
    assert seal_id in listed and "电子政务专用章" in listed

    sealed = tmp_path / "sealed.pdf"
    out = json.loads(cli_home.run("--json", "seal", "pdf", "--seal", seal_id, str(DATA / "licence.pdf"), str(sealed), "--level", "B-T").stdout)
    assert out["level"] == "B-T" and out["verify_url"].endswith("/verify/" + out["document_id"])
    assert sealed.read_bytes().startswith(b"%PDF-")

    done = cli_home.run("verify", str(sealed))
    assert done.returncode == 0 and done.stdout.startswith("TOTAL-PASSED") and "B-T" in done.stdout
    report = json.loads(cli_home.run("--json", "verify", str(sealed)).stdout)
    assert report["indication"] == "TOTAL-PASSED" and report["document"]["registered_id"] == out["document_id"]

    # a flipped byte inside the signed range: TOTAL-FAILED, exit 9
    data = bytearray(sealed.read_bytes())
    at = data.index(b"/Type /Catalog") if b"/Type /Catalog" in data else 200
    data[at + 2] ^= 0x01
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(bytes(data))
    done = cli_home.run("verify", str(broken), check=False)
    assert done.returncode == 9 and done.stdout.startswith("TOTAL-FAILED"), done.stdout + done.stderr

    # records
    rec = tmp_path / "r.json"
    rec.write_text(json.dumps([{"licence": "A1"}, {"licence": "A2"}], ensure_ascii=False))
    lines = cli_home.run("seal", "records", "--seal", seal_id, str(rec)).stdout.split()
    assert len(lines) == 2 and all(line.count(".") == 2 for line in lines)
    jws = tmp_path / "a.jws"
    jws.write_text(lines[0])
    assert cli_home.run("verify", str(jws)).stdout.startswith("TOTAL-PASSED")


def test_cli_errors_are_one_line_with_a_code(cli_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    done = cli_home.run("seal", "create", "--name", "章", "--department", "no-such-department", check=False)
    assert done.returncode != 0 and done.stderr.count("\n") == 1 and done.stderr.startswith("error:"), done.stderr
    done = cli_home.run("seal", "pdf", "--seal", "nope", str(DATA / "licence.pdf"), str(tmp_path / "o.pdf"), "--level", "B-B", check=False)
    assert done.returncode == 4 and "[signing.seal_not_found]" in done.stderr and done.stderr.count("\n") == 1
    done = cli_home.run("seal", "pdf", "--seal", "nope", str(DATA / "licence.pdf"), str(tmp_path / "o.pdf"), "--level", "B-Z", check=False)
    assert done.returncode == 2 and "[signing.bad_level]" in done.stderr
    done = cli_home.run("verify", str(DATA / "not_a_pdf.pdf"), check=False)
    assert done.returncode == 2 and "[verify.unknown_format]" in done.stderr and done.stderr.count("\n") == 1
    done = cli_home.run("verify", str(DATA / "encrypted.pdf"), check=False)
    assert done.returncode == 2 and "[verify.pdf_encrypted]" in done.stderr
    done = cli_home.run("verify", str(tmp_path / "missing.pdf"), check=False)
    assert done.returncode == 4 and "[cli.file_not_found]" in done.stderr
    assert not (tmp_path / "o.pdf").exists()
