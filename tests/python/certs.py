"""Test certificates, made with the openssl CLI: a CA, the broker's PEM
keystore for 127.0.0.1, and client certificates for mutual TLS, each signed
by a test CA."""

import collections
import os
import subprocess


def _openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name):
    """A self-signed CA: `name`.pem (returned) and `name`.key in `directory`."""
    _openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
             "-subj", "/CN=" + name)
    return os.path.join(directory, name + ".pem")


def _signed(directory, ca, name, subject, extensions, key_args):
    """`name`.crt and `name`.key for `subject`, signed by CA `ca` (its name
    in `directory`), with the given X.509v3 extensions."""
    _openssl(directory, "req", *key_args, "-nodes", "-keyout", name + ".key",
             "-out", name + ".csr", "-subj", subject)
    with open(os.path.join(directory, name + ".ext"), "w") as f:
        f.write(extensions + "\n")
    _openssl(directory, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
             "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".crt", "-days", "2",
             "-extfile", name + ".ext")
    return os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")


def _joined(directory, name, *parts):
    """One PEM file holding `parts` in order (a PEM keystore: chain, then key)."""
    path = os.path.join(directory, name)
    with open(path, "w") as out:
        for part in parts:
            with open(part) as f:
                out.write(f.read())
    return path


def make_keystore(directory, ca, name="server", san="IP:127.0.0.1,DNS:localhost"):
    """A PEM keystore (chain, then key) for the `san` names, signed by `ca`:
    `keystore.pem` for the default name, else `<name>.keystore.pem`."""
    crt, key = _signed(directory, ca, name, "/CN=localhost", "subjectAltName=" + san,
                       ["-newkey", "rsa:2048"])
    return _joined(directory, "keystore.pem" if name == "server" else name + ".keystore.pem",
                   crt, key)


ClientCert = collections.namedtuple("ClientCert", "cert key keystore")


def make_client_cert(directory, ca, name, subject):
    """A client certificate for `subject` (openssl's `/C=US/O=Acme/CN=alice`
    form) signed by `ca`: its certificate, key, and both in one PEM file
    (the Java client's PEM keystore)."""
    crt, key = _signed(directory, ca, name, subject, "extendedKeyUsage=clientAuth",
                       ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    return ClientCert(crt, key, _joined(directory, name + "-keystore.pem", crt, key))
