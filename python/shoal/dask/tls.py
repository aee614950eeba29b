"""TLS for shoal on Dask: a Security object from certificate files, and a
throwaway certificate authority for tests and trials on one machine.

Production clusters use certificates from their own CA; every process (the
scheduler, each worker, the client) gets the CA certificate plus its own
certificate and key:

    dask-scheduler --host 0.0.0.0 --protocol tls --tls-ca-file ca.pem \\
        --tls-cert node.pem --tls-key node.key
    python -m shoal.dask worker tls://HOST:8786 --device cpu:1 \\
        --tls-ca-file ca.pem --tls-cert node.pem --tls-key node.key
    client = Client("tls://HOST:8786", security=tls_security("ca.pem", "node.pem", "node.key"))
"""

import datetime
import ipaddress
import os

__all__ = ["tls_security", "make_certificates"]


def tls_security(ca_file, cert_file, key_file=None):
    """A distributed.security.Security for a client (or in-process worker)
    that requires TLS with these files."""
    from distributed.security import Security

    for path in (ca_file, cert_file, key_file):
        if path is not None and not os.path.isfile(path):
            from ..errors import InvalidArgumentError

            raise InvalidArgumentError(f"TLS: no such file '{path}'")
    return Security(
        tls_ca_file=os.fspath(ca_file),
        tls_client_cert=os.fspath(cert_file),
        tls_client_key=None if key_file is None else os.fspath(key_file),
        tls_scheduler_cert=os.fspath(cert_file),
        tls_scheduler_key=None if key_file is None else os.fspath(key_file),
        tls_worker_cert=os.fspath(cert_file),
        tls_worker_key=None if key_file is None else os.fspath(key_file),
        require_encryption=True,
    )


def make_certificates(directory, host="127.0.0.1", days=2):
    """Writes ca.pem, node.pem and node.key into `directory`: a new CA and a
    certificate it signed for `host` (an IP or a DNS name), usable by the
    scheduler, the workers and the client. For tests and trials only (needs
    the `cryptography` module). Returns (ca_file, cert_file, key_file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal test CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, content_commitment=False, key_encipherment=False,
              data_encipherment=False, key_agreement=False, key_cert_sign=True,
              crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([
                x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))

    paths = [os.path.join(directory, n) for n in ("ca.pem", "node.pem", "node.key")]
    pem = serialization.Encoding.PEM
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(pem))
    fd = os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return tuple(paths)
