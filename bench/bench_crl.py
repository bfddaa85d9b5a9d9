"""A CRL with 1,000,000 entries, built and signed in the HSM (issue 4, "Speed": ≤ 15 s, ≤ 1 GiB).

Set-up: 1,000,000 revoked certificates of the issuing CA inserted straight into
``ca_certificates`` with PostgreSQL ``COPY`` (random 126-bit serials, revocation times, a mix of
reason codes, one in ten with an invalidity date). Issuing a million real certificates first would
take hours here and does not change the CRL path, which reads only those columns.

Measured, each in a fresh process so its peak RSS (``VmHWM``) belongs to that work alone:

1. ``ca.crl.publish_crls`` — the code path the publisher and ``eauth crl publish`` run: read the
   revoked rows from PostgreSQL, encode the full CRL and the 16 shards (each entry twice), sign the
   17 TBSCertLists with the CA key in the HSM, store them, audit, commit.
2. ``ca.crl.build_crl`` alone on the list of 1,000,000 entries already in memory (encode + HSM
   signature of the full CRL) — the builder without the database.
3. References in the same run: ``openssl ca -gencrl`` (C, software key) from an ``index.txt`` with
   the same 1,000,000 revoked serials, and pyca/cryptography's ``CertificateRevocationListBuilder``
   (software key) on the first 100,000 of the same entries (its per-entry objects make a million
   take minutes; the figure is a rate, so it compares).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import io
import multiprocessing
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.common import bench_home, heading, main_guard, peak_rss_mib, report, scale

REASONS = ["keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "privilegeWithdrawn", "unspecified", None]
TIME_BUDGET_S = 15.0
MEMORY_BUDGET_MIB = 1024.0


def make_entries(n: int) -> list[tuple[str, str, str | None, str | None]]:
    """(serial hex, revoked_at, reason, invalidity date) as ``ca.crl.revoked_rows`` returns them."""
    from ca.hierarchy import new_serial

    rng = random.Random(1)
    base = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(days=30)
    out = []
    for i in range(n):
        at = base + datetime.timedelta(seconds=i)
        invalidity = (at - datetime.timedelta(days=1)).isoformat() if i % 10 == 0 else None
        out.append((format(new_serial(), "x"), at.isoformat(), rng.choice(REASONS), invalidity))
    out.sort()
    return out


def insert_revoked(db_url: str, issuer: str, entries: list[tuple[str, str, str | None, str | None]]) -> None:
    import psycopg

    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    not_before = (now - datetime.timedelta(days=60)).isoformat()
    not_after = (now + datetime.timedelta(days=700)).isoformat()
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY ca_certificates (serial, issuer, profile, subject_dn, status, not_before, not_after, spki_sha256, requested_by, created_at,"
            " revoked_at, revocation_reason, invalidity_date) FROM STDIN"
        ) as copy:
            for i, (serial, revoked_at, reason, invalidity) in enumerate(entries):
                copy.write_row(
                    (serial, issuer, "citizen", f"CN=bench {i}", "revoked", not_before, not_after, serial.rjust(64, "0"), "cli:bench", not_before, revoked_at, reason or "unspecified", invalidity)
                )


# -- measured in fresh processes ---------------------------------------------------------------------------


def _publish(env: dict[str, str]) -> dict[str, float]:
    os.environ.update(env)
    from ca import crl
    from core.security import Actor
    from core.settings import load_settings
    from eauth.runtime import build_runtime

    rt = build_runtime(load_settings())
    try:
        base = peak_rss_mib()
        t0 = time.perf_counter()
        c0 = time.process_time()
        with rt.db.transaction() as db:
            published = crl.publish_crls(rt, db, Actor.cli("bench"), rt.settings.ca_issuing_name, trigger="bench")
        return {
            "seconds": time.perf_counter() - t0,
            "cpu": time.process_time() - c0,
            "peak": peak_rss_mib(),
            "base": base,
            "full_entries": float(published[0].entries),
            "shard_entries": float(sum(p.entries for p in published[1:])),
        }
    finally:
        rt.db.dispose()
        rt.token.close()


def _build_only(env: dict[str, str], entries_file: str) -> dict[str, float]:
    os.environ.update(env)
    import pickle

    from ca import crl, service
    from core.settings import load_settings
    from eauth.runtime import build_runtime

    rt = build_runtime(load_settings())
    try:
        with rt.db.read() as db:
            authority = service.issuing_ca(rt, db)
        with open(entries_file, "rb") as fh:
            entries = pickle.load(fh)
        base = peak_rss_mib()
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        t0 = time.perf_counter()
        der, count = crl.build_crl(authority.key, authority.certificate, entries, number=1, this_update=now, next_update=now + datetime.timedelta(hours=24))
        seconds = time.perf_counter() - t0
        loaded = x509.load_der_x509_crl(der)
        if not loaded.is_signature_valid(authority.certificate.public_key()) or len(loaded) != len(entries):  # type: ignore[arg-type]
            raise RuntimeError("the built CRL does not verify or lacks entries")
        return {"seconds": seconds, "peak": peak_rss_mib(), "base": base, "bytes": float(len(der)), "entries": float(count)}
    finally:
        rt.db.dispose()
        rt.token.close()


def _cryptography_builder(entries_file: str, limit: int) -> dict[str, float]:
    import pickle

    from ca.crl import REASON_CODES  # noqa: F401 - same names

    with open(entries_file, "rb") as fh:
        entries = pickle.load(fh)[:limit]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cryptography reference")])
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    base = peak_rss_mib()
    t0 = time.perf_counter()
    builder = x509.CertificateRevocationListBuilder().issuer_name(name).last_update(now).next_update(now + datetime.timedelta(hours=24))
    builder = builder.add_extension(x509.CRLNumber(1), critical=False)
    for serial, revoked_at, reason, invalidity in entries:
        rb = x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(datetime.datetime.fromisoformat(revoked_at))
        if reason and reason != "unspecified":
            rb = rb.add_extension(x509.CRLReason(x509.ReasonFlags(reason)), critical=False)
        if invalidity:
            rb = rb.add_extension(x509.InvalidityDate(datetime.datetime.fromisoformat(invalidity).replace(tzinfo=None)), critical=False)
        builder = builder.add_revoked_certificate(rb.build())
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return {"seconds": time.perf_counter() - t0, "peak": peak_rss_mib(), "base": base, "bytes": float(len(der))}


def _openssl_gencrl(work: str) -> dict[str, float]:
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["openssl", "ca", "-gencrl", "-batch", "-config", f"{work}/openssl.cnf", "-crlhours", "24", "-out", f"{work}/peer.crl"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0.0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:  # sampled every 20 ms (ru_maxrss would include this process's size)
        try:
            peak = max(peak, watched.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    if proc.wait() != 0:
        raise RuntimeError(f"openssl ca -gencrl failed: {proc.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
    return {"seconds": seconds, "peak": peak, "base": 0.0, "bytes": float(os.path.getsize(f"{work}/peer.crl"))}


def in_fresh_process(fn, *args):  # type: ignore[no-untyped-def]
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def write_openssl_ca(work: Path, entries: list[tuple[str, str, str | None, str | None]]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openssl ca peer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    (work / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (work / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (work / "crlnumber").write_text("01\n")
    (work / "openssl.cnf").write_text(
        f"[ ca ]\ndefault_ca = peer\n[ peer ]\ndatabase = {work}/index.txt\ncertificate = {work}/ca.pem\nprivate_key = {work}/ca.key\n"
        f"crlnumber = {work}/crlnumber\ndefault_md = sha256\ncrl_extensions = crl_ext\n[ crl_ext ]\nauthorityKeyIdentifier = keyid\n"
    )
    expiry = (now + datetime.timedelta(days=700)).strftime("%y%m%d%H%M%SZ")
    buf = io.StringIO()
    for i, (serial, revoked_at, reason, invalidity) in enumerate(entries):
        hexs = serial.upper()
        if len(hexs) % 2:
            hexs = "0" + hexs
        rev = datetime.datetime.fromisoformat(revoked_at).strftime("%y%m%d%H%M%SZ")
        if invalidity:  # openssl's index: keyCompromise with an invalidity (compromise) time
            rev += ",keyCompromise," + datetime.datetime.fromisoformat(invalidity).strftime("%Y%m%d%H%M%SZ")
        elif reason and reason != "unspecified":
            # openssl's index knows no privilegeWithdrawn: another reason of the same encoded size
            rev += "," + ("superseded" if reason == "privilegeWithdrawn" else reason)
        buf.write(f"R\t{expiry}\t{rev}\t{hexs}\tunknown\t/CN=bench {i}\n")
    (work / "index.txt").write_text(buf.getvalue())


def main() -> None:
    n = scale(1_000_000, 50_000)
    n_pyca = min(n, 100_000)  # pyca's builder at 1,000,000 would take minutes: a tenth, rate per entry
    heading(f"CRL — {n:,} revoked entries, EC P-256 CA key in SoftHSM2, PostgreSQL")
    t0 = time.perf_counter()
    entries = make_entries(n)
    print(f"generated {n:,} entries in {time.perf_counter() - t0:.1f} s (not timed below)", flush=True)

    with bench_home() as bh, tempfile.TemporaryDirectory(prefix="eauth-bench-crl-") as tmp:
        work = Path(tmp)
        rt = bh.runtime()
        issuer = rt.settings.ca_issuing_name
        t0 = time.perf_counter()
        insert_revoked(bh.db_url, issuer, entries)
        report(f"inserted {n:,} revoked rows (COPY)", n / (time.perf_counter() - t0), "rows/s")
        import pickle

        entries_file = str(work / "entries.pickle")
        with open(entries_file, "wb") as fh:
            pickle.dump(entries, fh)
        write_openssl_ca(work, entries)
        del entries
        env = {k: v for k, v in bh.env.items() if k.startswith("EAUTH_")}

        publish = in_fresh_process(_publish, env)
        build = in_fresh_process(_build_only, env, entries_file)
        peer = in_fresh_process(_openssl_gencrl, str(work))
        pyca = in_fresh_process(_cryptography_builder, entries_file, n_pyca)

    heading("CRL figures (entries per second; ratio = speed relative to openssl ca -gencrl)")
    if publish["full_entries"] != n or publish["shard_entries"] != n:
        raise SystemExit(f"publish listed {publish['full_entries']:.0f} full / {publish['shard_entries']:.0f} shard entries, expected {n}")
    peer_rate = n / peer["seconds"]
    report("publish_crls: DB → full + 16 shards → HSM → DB", n / publish["seconds"], "entries/s", reference=peer_rate, ref_label="openssl ca -gencrl")
    print(f"{'':<44} {publish['seconds']:.1f} s (CPU {publish['cpu']:.1f} s), peak RSS {publish['peak']:.0f} MiB (process at start {publish['base']:.0f} MiB); "
          f"budget {TIME_BUDGET_S:.0f} s / {MEMORY_BUDGET_MIB:.0f} MiB", flush=True)
    report("build_crl only: entries → full CRL → HSM", n / build["seconds"], "entries/s", reference=peer_rate, ref_label="openssl ca -gencrl")
    print(f"{'':<44} {build['seconds']:.1f} s, peak RSS {build['peak']:.0f} MiB (start {build['base']:.0f}); {build['bytes'] / 2**20:.1f} MiB DER", flush=True)
    report("openssl ca -gencrl (C, software key)", peer_rate, "entries/s")
    print(f"{'':<44} {peer['seconds']:.1f} s, peak RSS {peer['peak']:.0f} MiB; {peer['bytes'] / 2**20:.1f} MiB DER", flush=True)
    report(f"cryptography CRL builder ({n_pyca:,} entries)", n_pyca / pyca["seconds"], "entries/s", reference=peer_rate, ref_label="openssl ca -gencrl")
    print(f"{'':<44} {pyca['seconds']:.1f} s, peak RSS {pyca['peak']:.0f} MiB (start {pyca['base']:.0f})", flush=True)
    ok_time = publish["seconds"] <= TIME_BUDGET_S
    ok_mem = publish["peak"] <= MEMORY_BUDGET_MIB
    print(f"targets: time {'met' if ok_time else 'MISSED'}, memory {'met' if ok_mem else 'MISSED'} (publish_crls, the end-to-end path)", flush=True)


if __name__ == "__main__":
    main_guard(main)
