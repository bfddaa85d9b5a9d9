"""CA hierarchy, profiles, issuance, maintenance, revocation, CRL, OCSP."""
