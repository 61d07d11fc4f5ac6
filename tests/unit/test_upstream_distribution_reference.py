"""distribution/reference's own test tables, run against imgctl.oci.Reference.

Upstream: github.com/distribution/reference, tag v0.6.0,
commit ff14fafe2236e51c2894ac07d4bdfc778e96d682; files reference_test.go, normalize_test.go and
regexp_test.go. Every table row of those files is here, with its upstream values as written; to
follow an upstream change, diff those three files against that commit and carry the rows over.

imgctl has one parser, ``Reference.parse``, which is upstream's ``ParseNormalizedNamed`` (Docker
Hub normalisation included). Rows written for upstream's non-normalising ``Parse`` / ``WithName``
carry an extra column with the normalised name imgctl gives; the upstream columns are unchanged.
Regexp rows are run through the parser (a row that matches must parse, one that does not must be
refused). Rows imgctl answers differently on purpose are in DIFFERENT at the end, each with its
reason; docs/architecture.md ("Image references") lists the same differences.
"""

from __future__ import annotations

import pytest

from imgctl.errors import InvalidDigestError, InvalidReferenceError
from imgctl.oci import Digest, Reference
from imgctl.oci.reference import _check_registry

F64 = "f" * 64
F34 = "f" * 34
F128 = "f" * 128
BE17 = "be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"
DBCC = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
SHORT_DIGEST = "sha256:1234567890098765432112345667890098765"  # 35 hex: reference grammar only
LONG_NAMESPACE = "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 3 + (
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker"
)


def _id(text: str) -> str:
    shown = text if len(text) <= 48 else f"{text[:36]}...({len(text)})"
    return ascii(shown)[1:-1] or "<empty>"


def _refused(text: str) -> InvalidReferenceError:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    assert type(info.value) is InvalidReferenceError
    return info.value


# ---------------------------------------------------------------------------------------------
# reference_test.go TestReferenceParse (upstream Parse; imgctl's column: the normalised name)
# ---------------------------------------------------------------------------------------------

# (input, err, repository, domain, tag, digest, imgctl's normalised name)
REFERENCE_PARSE: list[tuple[str, str | None, str, str, str, str, str]] = [
    ("test_com", None, "test_com", "", "", "", "docker.io/library/test_com"),
    ("test.com:tag", None, "test.com", "", "tag", "", "docker.io/library/test.com"),
    ("test.com:5000", None, "test.com", "", "5000", "", "docker.io/library/test.com"),
    ("test.com/repo:tag", None, "test.com/repo", "test.com", "tag", "", "test.com/repo"),
    ("test:5000/repo", None, "test:5000/repo", "test:5000", "", "", "test:5000/repo"),
    ("test:5000/repo:tag", None, "test:5000/repo", "test:5000", "tag", "", "test:5000/repo"),
    (f"test:5000/repo@sha256:{F64}", None, "test:5000/repo", "test:5000", "", f"sha256:{F64}",
     "test:5000/repo"),
    (f"test:5000/repo:tag@sha256:{F64}", None, "test:5000/repo", "test:5000", "tag",
     f"sha256:{F64}", "test:5000/repo"),
    ("test:5000/repo", None, "test:5000/repo", "test:5000", "", "", "test:5000/repo"),
    ("", "ErrNameEmpty", "", "", "", "", ""),
    (":justtag", "ErrReferenceInvalidFormat", "", "", "", "", ""),
    (f"@sha256:{F64}", "ErrReferenceInvalidFormat", "", "", "", "", ""),
    (f"repo@sha256:{F34}", "digest.ErrDigestInvalidLength", "", "", "", "", ""),
    (f"validname@invaliddigest:{F64}", "digest.ErrDigestUnsupported", "", "", "", "", ""),
    ("Uppercase:tag", "ErrNameContainsUppercase", "", "", "", "", ""),
    ("test:5000/Uppercase/lowercase:tag", "ErrNameContainsUppercase", "", "", "", "", ""),
    ("lowercase:Uppercase", None, "lowercase", "", "Uppercase", "", "docker.io/library/lowercase"),
    ("domain/" + "a" * 256 + ":tag", "ErrNameTooLong", "", "", "", "", ""),
    ("a/" * 127 + "a:tag-puts-this-over-max", None, "a/" * 127 + "a", "a",
     "tag-puts-this-over-max", "", "docker.io/" + "a/" * 127 + "a"),
    ("aa/asdf$$^/aa", "ErrReferenceInvalidFormat", "", "", "", "", ""),
    ("sub-dom1.foo.com/bar/baz/quux", None, "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com",
     "", "", "sub-dom1.foo.com/bar/baz/quux"),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", None, "sub-dom1.foo.com/bar/baz/quux",
     "sub-dom1.foo.com", "some-long-tag", "", "sub-dom1.foo.com/bar/baz/quux"),
    ("b.gcr.io/test.example.com/my-app:test.example.com", None, "b.gcr.io/test.example.com/my-app",
     "b.gcr.io", "test.example.com", "", "b.gcr.io/test.example.com/my-app"),
    ("xn--n3h.com/myimage:xn--n3h.com", None, "xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com",
     "", "xn--n3h.com/myimage"),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@sha512:{F128}", None, "xn--7o8h.com/myimage",
     "xn--7o8h.com", "xn--7o8h.com", f"sha512:{F128}", "xn--7o8h.com/myimage"),
    ("foo_bar.com:8080", None, "foo_bar.com", "", "8080", "", "docker.io/library/foo_bar.com"),
    ("foo/foo_bar.com:8080", None, "foo/foo_bar.com", "foo", "8080", "",
     "docker.io/foo/foo_bar.com"),
    ("192.168.1.1", None, "192.168.1.1", "", "", "", "docker.io/library/192.168.1.1"),
    ("192.168.1.1:tag", None, "192.168.1.1", "", "tag", "", "docker.io/library/192.168.1.1"),
    ("192.168.1.1:5000", None, "192.168.1.1", "", "5000", "", "docker.io/library/192.168.1.1"),
    ("192.168.1.1/repo", None, "192.168.1.1/repo", "192.168.1.1", "", "", "192.168.1.1/repo"),
    ("192.168.1.1:5000/repo", None, "192.168.1.1:5000/repo", "192.168.1.1:5000", "", "",
     "192.168.1.1:5000/repo"),
    ("192.168.1.1:5000/repo:5050", None, "192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", "",
     "192.168.1.1:5000/repo"),
    ("[2001:db8::1]", "ErrReferenceInvalidFormat", "", "", "", "", ""),
    ("[2001:db8::1]:5000", "ErrReferenceInvalidFormat", "", "", "", "", ""),
    ("[2001:db8::1]:tag", "ErrReferenceInvalidFormat", "", "", "", "", ""),
    ("[2001:db8::1]/repo", None, "[2001:db8::1]/repo", "[2001:db8::1]", "", "",
     "[2001:db8::1]/repo"),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", None, "[2001:db8:1:2:3:4:5:6]/repo",
     "[2001:db8:1:2:3:4:5:6]", "tag", "", "[2001:db8:1:2:3:4:5:6]/repo"),
    ("[2001:db8::1]:5000/repo", None, "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "", "",
     "[2001:db8::1]:5000/repo"),
    ("[2001:db8::1]:5000/repo:tag", None, "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag",
     "", "[2001:db8::1]:5000/repo"),
    (f"[2001:db8::1]:5000/repo@sha256:{F64}", None, "[2001:db8::1]:5000/repo",
     "[2001:db8::1]:5000", "", f"sha256:{F64}", "[2001:db8::1]:5000/repo"),
    (f"[2001:db8::1]:5000/repo:tag@sha256:{F64}", None, "[2001:db8::1]:5000/repo",
     "[2001:db8::1]:5000", "tag", f"sha256:{F64}", "[2001:db8::1]:5000/repo"),
    ("[2001:db8::]:5000/repo", None, "[2001:db8::]:5000/repo", "[2001:db8::]:5000", "", "",
     "[2001:db8::]:5000/repo"),
    ("[::1]:5000/repo", None, "[::1]:5000/repo", "[::1]:5000", "", "", "[::1]:5000/repo"),
    ("[fe80::1%eth0]:5000/repo", "ErrReferenceInvalidFormat", "", "", "", "", ""),
    ("[fe80::1%@invalidzone]:5000/repo", "ErrReferenceInvalidFormat", "", "", "", "", ""),
    ("example.com/" + "a" * 255 + ":tag", None, "example.com/" + "a" * 255, "example.com", "tag",
     "", "example.com/" + "a" * 255),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "err", "repository", "domain", "tag", "digest", "ours"),
    REFERENCE_PARSE,
    ids=[_id(r[0]) for r in REFERENCE_PARSE],
)
def test_reference_parse(
    text: str, err: str | None, repository: str, domain: str, tag: str, digest: str, ours: str
) -> None:
    if err is not None:
        _refused(text)
        return
    ref = Reference.parse(text)
    assert ref.name == ours
    if ours == repository:  # upstream's Parse found the registry Docker's rule finds
        assert ref.registry == domain
    assert ref.tag == (tag or None)
    assert ref.digest == (Digest.parse(digest) if digest else None)
    # Upstream checks String() == input; imgctl's short (familiar) form is that string.
    assert ref.familiar == text


# reference_test.go TestWithNameFailure: names that WithName refuses (parse_repository here).
WITH_NAME_FAILURE = [
    ("", "ErrReferenceInvalidFormat"),
    (":justtag", "ErrReferenceInvalidFormat"),
    (f"@sha256:{F64}", "ErrReferenceInvalidFormat"),
    (f"validname@invaliddigest:{F64}", "ErrReferenceInvalidFormat"),
    ("example.com/repo:tag", "ErrReferenceInvalidFormat"),
    ("example.com/" + "a" * 256, "ErrNameTooLong"),
    ("aa/asdf$$^/aa", "ErrReferenceInvalidFormat"),
]


@pytest.mark.parametrize(
    ("text", "err"), WITH_NAME_FAILURE, ids=[_id(r[0]) for r in WITH_NAME_FAILURE]
)
def test_with_name_failure(text: str, err: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse_repository(text)
    if err == "ErrNameTooLong":
        assert "the limit is 255" in info.value.message


# reference_test.go TestDomainAndPath (WithName, not normalised): (input, domain, path, ours).
DOMAIN_AND_PATH = [
    ("test.com/foo", "test.com", "foo", "test.com/foo"),
    ("test_com/foo", "", "test_com/foo", "docker.io/test_com/foo"),
    ("test:8080/foo", "test:8080", "foo", "test:8080/foo"),
    ("test.com:8080/foo", "test.com:8080", "foo", "test.com:8080/foo"),
    ("test-com:8080/foo", "test-com:8080", "foo", "test-com:8080/foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "xn--n3h.com:18080/foo"),
]


@pytest.mark.parametrize(("text", "domain", "path", "ours"), DOMAIN_AND_PATH)
def test_domain_and_path(text: str, domain: str, path: str, ours: str) -> None:
    ref = Reference.parse_repository(text)
    assert ref.name == ours
    if domain:
        assert (ref.registry, ref.repository) == (domain, path)


# reference_test.go TestSerialization: (description, input, name, tag, digest, err).
SERIALIZATION = [
    ("empty value", "", "", "", "", "ErrNameEmpty"),
    ("just a name", "example.com:8000/named", "example.com:8000/named", "", "", None),
    ("name with a tag", "example.com:8000/named:tagged", "example.com:8000/named", "tagged", "",
     None),
    ("name with digest",
     "other.com/named@sha256:1234567890098765432112345667890098765432112345667890098765432112",
     "other.com/named", "",
     "sha256:1234567890098765432112345667890098765432112345667890098765432112", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("description", "text", "name", "tag", "digest", "err"),
    SERIALIZATION,
    ids=[r[0] for r in SERIALIZATION],
)
def test_serialization(
    description: str, text: str, name: str, tag: str, digest: str, err: str | None
) -> None:
    if err is not None:
        _refused(text)
        return
    ref = Reference.parse(text)
    assert ref.name == name
    assert ref.tag == (tag or None)
    assert ref.digest == (Digest.parse(digest) if digest else None)
    assert str(ref) == text  # serialised back to the same text


# reference_test.go TestWithTag: (name, digest, tag, combined). Row 5 is in DIFFERENT.
WITH_TAG = [
    ("test.com/foo", "", "tag", "test.com/foo:tag"),
    ("foo", "", "tag2", "foo:tag2"),
    ("test.com:8000/foo", "", "tag4", "test.com:8000/foo:tag4"),
    ("test.com:8000/foo", "", "TAG5", "test.com:8000/foo:TAG5"),
]


@pytest.mark.parametrize(("name", "digest", "tag", "combined"), WITH_TAG)
def test_with_tag(name: str, digest: str, tag: str, combined: str) -> None:
    assert not digest
    assert Reference.parse_repository(name).with_tag(tag).familiar == combined


# reference_test.go TestParseNamed: ParseNamed accepts only a canonical name, i.e. one that
# imgctl prints back unchanged. (input, domain, path, err)
PARSE_NAMED = [
    ("test.com/foo", "test.com", "foo", None),
    ("test:8080/foo", "test:8080", "foo", None),
    ("test_com/foo", "", "", "ErrNameNotCanonical"),
    ("test.com", "", "", "ErrNameNotCanonical"),
    ("foo", "", "", "ErrNameNotCanonical"),
    ("library/foo", "", "", "ErrNameNotCanonical"),
    ("docker.io/library/foo", "docker.io", "library/foo", None),
    ("docker.io/foo", "", "", "ErrNameNotCanonical"),
]


@pytest.mark.parametrize(("text", "domain", "path", "err"), PARSE_NAMED)
def test_parse_named(text: str, domain: str, path: str, err: str | None) -> None:
    ref = Reference.parse_repository(text)
    assert (str(ref) == text) is (err is None)
    if err is None:
        assert (ref.registry, ref.repository) == (domain, path)


# ---------------------------------------------------------------------------------------------
# normalize_test.go
# ---------------------------------------------------------------------------------------------

# TestValidateReferenceName
VALID_REPO_NAMES = [
    "docker/docker", "library/debian", "debian", "localhost/library/debian", "localhost/debian",
    "LOCALDOMAIN/library/debian", "LOCALDOMAIN/debian", "docker.io/docker/docker",
    "docker.io/library/debian", "docker.io/debian", "index.docker.io/docker/docker",
    "index.docker.io/library/debian", "index.docker.io/debian", "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian", "127.0.0.1:5000/debian", "192.168.0.1", "192.168.0.1:80",
    "192.168.0.1:8/debian", "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker", "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "Docker/docker", "DOCKER/docker",
]  # fmt: skip
INVALID_REPO_NAMES = [
    "https://github.com/docker/docker", "docker/Docker", "-docker", "-docker/docker",
    "-docker.io/docker/docker", "docker///docker", "docker.io/docker/Docker",
    "docker.io/docker///docker", "[fc00::1]", "[fc00::1]:5000", "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian", "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
]  # fmt: skip

# TestValidateRemoteName
VALID_REMOTE_NAMES = [
    "docker/docker", "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "docker-rules/docker", "docker---rules/docker", "doc/docker", "d/docker", "jess/t",
    "dock__er/docker",
]  # fmt: skip
INVALID_REMOTE_NAMES = [
    "docker/Docker", "docker///docker",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "-docker/docker", "docker-/docker", "-docker-/docker", "____/____", "_docker/_docker",
    "dock..er/docker", "dock_.er/docker", "dock-.er/docker", "docker/", LONG_NAMESPACE,
]  # fmt: skip


@pytest.mark.parametrize("text", VALID_REPO_NAMES + VALID_REMOTE_NAMES)
def test_valid_names(text: str) -> None:
    reference = Reference.parse(text)
    # The repository's last component is the name's, and the canonical spelling (defaults
    # added, docker.io's aliases folded) parses back to the same reference.
    assert reference.repository.rsplit("/", 1)[-1] in text
    assert Reference.parse(str(reference)) == reference


@pytest.mark.parametrize("text", INVALID_REPO_NAMES + INVALID_REMOTE_NAMES, ids=_id)
def test_invalid_names(text: str) -> None:
    _refused(text)


def test_long_namespace_is_the_upstream_string() -> None:
    assert len(LONG_NAMESPACE) == 278
    assert LONG_NAMESPACE.count("this_is_not_a_valid_namespace") == 4


# TestParseRepositoryInfo: (RemoteName, FamiliarName, FullName, AmbiguousName, Domain)
REPOSITORY_INFO = [
    ("fooo", "localhost/fooo", "localhost/fooo", "localhost/fooo", "localhost"),
    ("fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost"),
    ("fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN"),
    ("fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar",
     "LOCALDOMAIN"),
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", "",
     "127.0.0.1:8000"),
    ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", "",
     "127.0.0.1:8000"),
    ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", "",
     "example.com"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
    ("private/moonbase", "example.com:8000/private/moonbase", "example.com:8000/private/moonbase",
     "", "example.com:8000"),
    ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", "",
     "example.com:8000"),
    ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base",
     "index.docker.io/library/ubuntu-12.04-base", "docker.io"),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
    ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
]  # fmt: skip


@pytest.mark.parametrize(("remote", "familiar", "full", "ambiguous", "domain"), REPOSITORY_INFO)
def test_parse_repository_info(
    remote: str, familiar: str, full: str, ambiguous: str, domain: str
) -> None:
    for text in [familiar, full] + ([ambiguous] if ambiguous else []):
        ref = Reference.parse(text)
        assert ref.familiar == familiar, text
        assert str(ref) == full, text
        assert ref.registry == domain, text
        assert ref.repository == remote, text


def test_parse_reference_with_tag_and_digest() -> None:
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    ref = Reference.parse(short)
    assert str(ref) == "docker.io/library/" + short
    assert ref.tag == "latest"
    assert ref.digest is not None
    assert ref.familiar == short


def test_invalid_reference_components() -> None:
    _refused("-foo")
    ref = Reference.parse("busybox")
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("-foo")
    with pytest.raises(InvalidDigestError):  # with_digest takes a Digest; "foo" is none
        Digest.parse("foo")


# TestParseAnyReference: (Reference, Equivalent). The two digest-only rows are in DIFFERENT.
PARSE_ANY = [
    ("redis", "docker.io/library/redis"),
    ("redis:latest", "docker.io/library/redis:latest"),
    ("docker.io/library/redis:latest", "docker.io/library/redis:latest"),
    (f"redis@sha256:{DBCC}", f"docker.io/library/redis@sha256:{DBCC}"),
    (f"docker.io/library/redis@sha256:{DBCC}", f"docker.io/library/redis@sha256:{DBCC}"),
    ("dmcgowan/myapp", "docker.io/dmcgowan/myapp"),
    ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest"),
    ("docker.io/mcgowan/myapp:latest", "docker.io/mcgowan/myapp:latest"),
    (f"dmcgowan/myapp@sha256:{DBCC}", f"docker.io/dmcgowan/myapp@sha256:{DBCC}"),
    (f"docker.io/dmcgowan/myapp@sha256:{DBCC}", f"docker.io/dmcgowan/myapp@sha256:{DBCC}"),
    (DBCC[:63], f"docker.io/library/{DBCC[:63]}"),
    ("dbcc1", "docker.io/library/dbcc1"),
]


@pytest.mark.parametrize(("text", "equivalent"), PARSE_ANY, ids=[_id(r[0]) for r in PARSE_ANY])
def test_parse_any_reference(text: str, equivalent: str) -> None:
    ref = Reference.parse(text)
    assert str(ref) == equivalent
    assert Reference.parse(equivalent) == ref


# TestNormalizedSplitHostname: (input, domain, path)
SPLIT_HOSTNAME = [
    ("test.com/foo", "test.com", "foo"),
    ("test_com/foo", "docker.io", "test_com/foo"),
    ("docker/migrator", "docker.io", "docker/migrator"),
    ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"),
    ("foo", "docker.io", "library/foo"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ("docker.io/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
]


@pytest.mark.parametrize(("text", "domain", "path"), SPLIT_HOSTNAME)
def test_normalized_split_hostname(text: str, domain: str, path: str) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository) == (domain, path)


# TestParseDockerRef: (name, input, expected). ParseDockerRef is what a pull asks for: the
# digest when there is one, else the tag, else latest -- imgctl's Reference.identifier.
PARSE_DOCKER_REF = [
    ("nothing", "busybox", "docker.io/library/busybox:latest"),
    ("tag only", "busybox:latest", "docker.io/library/busybox:latest"),
    ("digest only",
     "busybox@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582",
     "docker.io/library/busybox@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"),
    ("path only", "library/busybox", "docker.io/library/busybox:latest"),
    ("hostname only", "docker.io/busybox", "docker.io/library/busybox:latest"),
    ("no tag", "docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("no path", "docker.io/busybox:latest", "docker.io/library/busybox:latest"),
    ("no hostname", "library/busybox:latest", "docker.io/library/busybox:latest"),
    ("full reference with tag", "docker.io/library/busybox:latest",
     "docker.io/library/busybox:latest"),
    ("gcr reference without tag", "gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
    ("both tag and digest",
     "gcr.io/library/busybox:latest@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582",
     "gcr.io/library/busybox@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "expected"), PARSE_DOCKER_REF, ids=[r[0] for r in PARSE_DOCKER_REF]
)
def test_parse_docker_ref(name: str, text: str, expected: str) -> None:
    ref = Reference.parse(text)
    separator = "@" if ref.digest is not None else ":"
    output = f"{ref.name}{separator}{ref.identifier}"
    assert output == expected
    Reference.parse(output)


# ---------------------------------------------------------------------------------------------
# regexp_test.go, through the parser
# ---------------------------------------------------------------------------------------------

# TestDomainRegexp: (input, match). The rows with a port above 65535 are in DIFFERENT.
DOMAIN_REGEXP = [
    ("test.com", True), ("test.com:10304", True), ("test.com:http", False), ("localhost", True),
    ("localhost:8080", True), ("a", True), ("a.b", True), ("ab.cd.com", True), ("a-b.com", True),
    ("-ab.com", False), ("ab-.com", False), ("ab.c-om", True), ("ab.-com", False),
    ("ab.com-", False), ("0101.com", True), ("001a.com", True), ("b.gbc.io:443", True),
    ("b.gbc.io", True), ("xn--n3h.com", True), ("Asdf.com", True),
    ("[fd00:1:2::3]75050", False), ("[fd00:1:2::3]::75050", False),
    ("[fd00:1:2::3%eth0]:75050", False), ("fd00:1:2::3:75050", False),
]  # fmt: skip


@pytest.mark.parametrize(("domain", "match"), DOMAIN_REGEXP)
def test_domain_regexp(domain: str, match: bool) -> None:
    if match:
        _check_registry(domain, domain)
    else:
        with pytest.raises(InvalidReferenceError):
            _check_registry(domain, domain)


# TestFullNameRegexp: (input, match, subs). A name without tag or digest: parse_repository.
# The row of 257 characters is in DIFFERENT (regexp only: the parser's length limit refuses it).
FULL_NAME_REGEXP: list[tuple[str, bool, tuple[str, str] | None]] = [
    ("", False, None), ("short", True, ("", "short")), ("simple/name", True, ("simple", "name")),
    ("library/ubuntu", True, ("library", "ubuntu")),
    ("docker/stevvooe/app", True, ("docker", "stevvooe/app")),
    ("aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb", True,
     ("aa", "aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb")),
    ("aa/aa/bb/bb/bb", True, ("aa", "aa/bb/bb/bb")), ("a/a/a/a", True, ("a", "a/a/a")),
    ("a/a/a/a/", False, None), ("a//a/a", False, None), ("a", True, ("", "a")),
    ("a/aa", True, ("a", "aa")), ("a/aa/a", True, ("a", "aa/a")),
    ("foo.com", True, ("", "foo.com")), ("foo.com/", False, None),
    ("foo.com:8080/bar", True, ("foo.com:8080", "bar")), ("foo.com:http/bar", False, None),
    ("foo.com/bar", True, ("foo.com", "bar")), ("foo.com/bar/baz", True, ("foo.com", "bar/baz")),
    ("localhost:8080/bar", True, ("localhost:8080", "bar")),
    ("sub-dom1.foo.com/bar/baz/quux", True, ("sub-dom1.foo.com", "bar/baz/quux")),
    ("blog.foo.com/bar/baz", True, ("blog.foo.com", "bar/baz")), ("a^a", False, None),
    ("aa/asdf$$^/aa", False, None), ("asdf$$^/aa", False, None),
    ("aa-a/a", True, ("aa-a", "a")), ("a-/a/a/a", False, None), ("foo.com/a-/a/a", False, None),
    ("-foo/bar", False, None), ("foo/bar-", False, None), ("foo-/bar", False, None),
    ("foo/-bar", False, None), ("_foo/bar", False, None), ("foo_bar", True, ("", "foo_bar")),
    ("foo_bar.com", True, ("", "foo_bar.com")), ("foo_bar.com:8080", False, None),
    ("foo_bar.com:8080/app", False, None), ("foo.com/foo_bar", True, ("foo.com", "foo_bar")),
    ("____/____", False, None), ("_docker/_docker", False, None), ("docker_/docker_", False, None),
    ("b.gcr.io/test.example.com/my-app", True, ("b.gcr.io", "test.example.com/my-app")),
    ("xn--n3h.com/myimage", True, ("xn--n3h.com", "myimage")),
    ("xn--7o8h.com/myimage", True, ("xn--7o8h.com", "myimage")),
    ("example.com/xn--7o8h.com/myimage", True, ("example.com", "xn--7o8h.com/myimage")),
    ("example.com/some_separator__underscore/myimage", True,
     ("example.com", "some_separator__underscore/myimage")),
    ("example.com/__underscore/myimage", False, None), ("example.com/..dots/myimage", False, None),
    ("example.com/.dots/myimage", False, None), ("example.com/nodouble..dots/myimage", False, None),
    ("example.com/nodouble..dots/myimage", False, None), ("docker./docker", False, None),
    (".docker/docker", False, None), ("docker-/docker", False, None),
    ("-docker/docker", False, None), ("do..cker/docker", False, None),
    ("do__cker:8080/docker", False, None), ("do__cker/docker", True, ("", "do__cker/docker")),
    ("b.gcr.io/test.example.com/my-app", True, ("b.gcr.io", "test.example.com/my-app")),
    ("registry.io/foo/project--id.module--name.ver---sion--name", True,
     ("registry.io", "foo/project--id.module--name.ver---sion--name")),
    ("Asdf.com/foo/bar", True, None), ("Foo/FarB", False, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "match", "subs"), FULL_NAME_REGEXP, ids=[_id(r[0]) for r in FULL_NAME_REGEXP]
)
def test_full_name_regexp(text: str, match: bool, subs: tuple[str, str] | None) -> None:
    if not match:
        with pytest.raises(InvalidReferenceError):
            Reference.parse_repository(text)
        return
    ref = Reference.parse_repository(text)
    assert str(ref).endswith(text)
    if subs is not None and ("." in subs[0] or ":" in subs[0]):
        # The regexp takes any first component as a domain; the parser (Docker's rule) only
        # one with a '.' or a ':'. Where both agree it is a registry, they split alike.
        assert (ref.registry, ref.repository) == subs


# TestReferenceRegexp: (input, match, (name, tag, digest)).
REFERENCE_REGEXP: list[tuple[str, bool, tuple[str, str, str] | None]] = [
    ("registry.com:8080/myapp:tag", True, ("registry.com:8080/myapp", "tag", "")),
    (f"registry.com:8080/myapp@sha256:{BE17}", True,
     ("registry.com:8080/myapp", "", f"sha256:{BE17}")),
    (f"registry.com:8080/myapp:tag2@sha256:{BE17}", True,
     ("registry.com:8080/myapp", "tag2", f"sha256:{BE17}")),
    ("registry.com:8080/myapp@sha256:badbadbadbad", False, None),
    ("registry.com:8080/myapp:invalid~tag", False, None),
    ("bad_hostname.com:8080/myapp:tag", False, None),
    (f"localhost:8080@sha256:{BE17}", True, ("localhost", "8080", f"sha256:{BE17}")),
    (f"localhost:8080/name@sha256:{BE17}", True, ("localhost:8080/name", "", f"sha256:{BE17}")),
    (f"localhost:http/name@sha256:{BE17}", False, None),
    (f"localhost@sha256:{BE17}", True, ("localhost", "", f"sha256:{BE17}")),
    ("registry.com:8080/myapp@bad", False, None),
    ("registry.com:8080/myapp@2bad", False, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "match", "subs"), REFERENCE_REGEXP, ids=[_id(r[0]) for r in REFERENCE_REGEXP]
)
def test_reference_regexp(text: str, match: bool, subs: tuple[str, str, str] | None) -> None:
    if not match:
        _refused(text)
        return
    assert subs is not None
    name, tag, digest = subs
    ref = Reference.parse(text)
    assert ref.with_tag(None).familiar == name
    assert ref.tag == (tag or None)
    assert ref.digest == (Digest.parse(digest) if digest else None)


# TestIdentifierRegexp: (input, match). A 64-character lowercase hex string is an image id, which
# the parser refuses as a name (ParseNormalizedNamed does the same).
IDENTIFIER_REGEXP = [
    ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821", True),
    ("7EC43B381E5AEFE6E04EFB0B3F0693FF2A4A50652D64AEC573905F2DB5889A1C", False),
    ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf", False),
    ("sha256:da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821", False),
    ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf98218482", False),
]


@pytest.mark.parametrize(
    ("text", "match"), IDENTIFIER_REGEXP, ids=[r[0][:12] for r in IDENTIFIER_REGEXP]
)
def test_identifier_regexp(text: str, match: bool) -> None:
    if match:
        assert "image id" in _refused(text).message
        return
    try:
        Reference.parse(text)
    except InvalidReferenceError as exc:
        refusal = exc.message
    else:
        refusal = ""
    assert "image id" not in refusal


# ---------------------------------------------------------------------------------------------
# Rows imgctl answers differently on purpose (also in docs/architecture.md, "Image references")
# ---------------------------------------------------------------------------------------------

# (upstream file and test, input, what upstream says, what imgctl does instead)
DIFFERENT: list[tuple[str, str, str, str]] = [
    ("regexp_test.go TestDomainRegexp", "192.168.1.1:75050", "matches",
     "refused: port above 65535"),
    ("regexp_test.go TestDomainRegexp", "192.168.1.1:750050", "matches",
     "refused: port above 65535"),
    ("regexp_test.go TestDomainRegexp", "[fd00:1:2::3]:75050", "matches",
     "refused: port above 65535"),
    ("regexp_test.go TestDomainRegexp", "[fd00123123123]:75050", "matches",
     "refused: port above 65535"),
    ("regexp_test.go TestDomainRegexp", "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050",
     "matches", "refused: port above 65535"),
    ("regexp_test.go TestDomainRegexp", "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505",
     "matches", "refused: port above 65535"),
    ("regexp_test.go TestFullNameRegexp", "a/" * 128 + "a", "matches",
     "refused: the path is 257 characters (ParseNormalizedNamed refuses it too)"),
    ("reference_test.go TestWithTag", "test.com:8000/foo + " + SHORT_DIGEST + " + TAG5",
     "test.com:8000/foo:TAG5@" + SHORT_DIGEST,
     "the 35-hex sha256 is no digest (Digest.parse refuses it); with_tag drops a digest"),
    ("reference_test.go TestWithDigest", "test.com/foo + " + SHORT_DIGEST,
     "test.com/foo@" + SHORT_DIGEST, "the 35-hex sha256 is no digest (Digest.parse refuses it)"),
    ("reference_test.go TestWithDigest", "foo + " + SHORT_DIGEST, "foo@" + SHORT_DIGEST,
     "the 35-hex sha256 is no digest (Digest.parse refuses it)"),
    ("reference_test.go TestWithDigest", "test.com:8000/foo + " + SHORT_DIGEST,
     "test.com:8000/foo@" + SHORT_DIGEST,
     "the 35-hex sha256 is no digest (Digest.parse refuses it)"),
    ("reference_test.go TestWithDigest", "test.com:8000/foo:latest + " + SHORT_DIGEST,
     "test.com:8000/foo:latest@" + SHORT_DIGEST,
     "the 35-hex sha256 is no digest (Digest.parse refuses it); with_digest drops a tag"),
    ("normalize_test.go TestParseAnyReference", DBCC, "sha256:" + DBCC + " (a digest reference)",
     "refused: an image id names no repository"),
    ("normalize_test.go TestParseAnyReference", "sha256:" + DBCC, "sha256:" + DBCC,
     "docker.io/library/sha256:" + DBCC + " (ParseNormalizedNamed's reading)"),
    ("normalize_test.go TestMatch (9 rows), TestMatchError", "foo/**/ba[rz] ...",
     "FamiliarMatch results", "not applicable: imgctl has no path.Match over references"),
]  # fmt: skip


@pytest.mark.parametrize(
    "domain", [d[1] for d in DIFFERENT if d[0] == "regexp_test.go TestDomainRegexp"]
)
def test_different_ports_above_65535_are_refused(domain: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        _check_registry(domain, domain)
    assert "out of range" in info.value.message


def test_different_257_character_path_is_refused_as_too_long() -> None:
    text = "a/" * 128 + "a"
    assert len(text) == 257
    assert "the limit is 255" in _refused(text).message


@pytest.mark.parametrize("text", [DBCC, "sha256:" + DBCC])
def test_different_digest_only_references(text: str) -> None:
    if text == DBCC:
        assert "image id" in _refused(text).message
    else:
        ref = Reference.parse(text)
        assert (ref.name, ref.tag) == ("docker.io/library/sha256", DBCC)


def test_different_short_digests_are_refused() -> None:
    with pytest.raises(InvalidDigestError):
        Digest.parse(SHORT_DIGEST)
    full = Digest.parse(f"sha256:{BE17}")
    tagged = Reference.parse("test.com:8000/foo:latest")
    assert tagged.with_digest(full).tag is None
    assert tagged.with_digest(full).with_tag("TAG5").digest is None
