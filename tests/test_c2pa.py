"""C2PA manifests, signed with a throw-away test CA made here (never a real identity)."""

import datetime

import pytest

pytest.importorskip("c2pa", reason="needs c2pa-python")
x509 = pytest.importorskip("cryptography.x509", reason="needs cryptography for the test certificate")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from brushwork.cli import main  # noqa: E402
from brushwork.provenance import c2pa, read_record  # noqa: E402


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "brushwork tests")])


def _usage(**on):
    flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                 encipher_only=False, decipher_only=False)
    return x509.KeyUsage(**{**flags, **on})


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    """A test CA and an ES256 signing certificate it issued, as PEM files."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, issuer, public_key, signing_key, ca):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        else:
            builder = (builder.add_extension(_usage(digital_signature=True), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                      critical=False))
        return builder.sign(signing_key, hashes.SHA256())

    ca = cert(_name("brushwork test CA"), _name("brushwork test CA"), ca_key.public_key(), ca_key, True)
    leaf = cert(_name("brushwork test signer"), ca.subject, key.public_key(), ca_key, False)
    folder = tmp_path_factory.mktemp("c2pa")
    (folder / "chain.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                                       + ca.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "chain.pem", folder / "key.pem"


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_sample_with_a_signed_c2pa_manifest(tmp_path, credentials, capsys, ext):
    from brushwork.training.run import train_run
    from conftest import tiny_run_config

    run = tmp_path / "run"
    train_run(tiny_run_config("dcgan", steps=2), run, quiet=True)
    chain, key = credentials
    assert main(["sample", str(run), "--seeds", "3", "--format", ext, "--out", str(tmp_path / "o"),
                 "--c2pa-cert", str(chain), "--c2pa-key", str(key), "--device", "cpu"]) == 0
    path = tmp_path / "o" / f"seed0003.{ext}"
    manifest = c2pa.read(path)
    assert manifest["digital_source_type"] == [c2pa.TRAINED_ALGORITHMIC_MEDIA]
    assert manifest["record"]["seed"] == 3
    assert manifest["issues"] == ["signingCredential.untrusted"]  # a test CA, as expected
    assert read_record(path)["brushwork"]["seed"] == 3  # the plain record is still there too
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    assert "C2PA manifest" in capsys.readouterr().out


def test_missing_credentials_are_a_clear_error(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--seeds", "1", "--out", str(tmp_path / "o"),
                 "--c2pa-cert", str(tmp_path / "nope.pem")]) == 2
    assert "certificate chain PEM" in capsys.readouterr().err
