"""The ``Examples:`` section of every ``--help`` page: one table, keyed by command path.

Each example is a comment line (what it does) and a command line, as cobra's ``Example`` field
shows them (kubectl, crane, cosign). The table is plain data, imported by ``_help`` when a page
is printed, so ``--help`` stays fast. tests/unit/test_cli_examples.py requires an entry for every
command and subcommand, each starting with ``imgctl <that command>``, and parses each with its
command's flags: a new command needs its examples here, a renamed flag fails the test.
"""

from __future__ import annotations

from typing import Final

__all__ = ["EXAMPLES", "examples"]

# Command path ("" is imgctl itself, "catalog ls" a subcommand) -> (comment, command line).
EXAMPLES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "": (
        ("Copy an image between registries, digests unchanged", "imgctl copy SRC DST"),
        ("Everything at once on loopback ports: registries, issuer, server", "imgctl demo"),
        ("Trace every registry request on stderr (for a bug report)", "imgctl -v ls REPO"),
        ("Show imgctl's version, commit and the server's version", "imgctl version"),
    ),
    "copy": (
        (
            "Copy one image, all its platforms and signatures, keeping its tag",
            "imgctl copy ghcr.io/acme/app:v1.2.3 registry.example.com/acme/app",
        ),
        (
            "Copy many images, one 'SRC DST' pair a line, and print JSON",
            "imgctl copy --from-file pairs.txt -j 16 -o json",
        ),
        (
            "Copy only the linux/arm64 image, without signatures or attestations",
            "imgctl copy ghcr.io/acme/app:v1 registry.example.com/acme/app:v1-arm64 "
            "--platform linux/arm64 --referrers none",
        ),
        (
            "Copy to a registry whose certificate a private CA signed",
            "imgctl copy ghcr.io/acme/app:v1 registry.internal/app:v1 "
            "--registry-ca-cert-path ca.pem",
        ),
        (
            "Copy every tag of a repository (crane cp --all-tags)",
            "imgctl copy --all-tags ghcr.io/acme/app registry.example.com/acme/app",
        ),
        (
            "Other credentials on each side (skopeo's flags; the password from a variable)",
            'imgctl copy --src-creds ci:"$SRC_TOKEN" --dest-creds robot:"$DEST_TOKEN" '
            "quay.io/acme/app:v1 registry.example.com/acme/app",
        ),
    ),
    "digest": (
        ("Print the digest a tag points at", "imgctl digest ghcr.io/acme/app:v1.2.3"),
        (
            "Pin a tag to its digest in a script",
            "imgctl digest registry.example.com/app:v1 --registry-anon",
        ),
    ),
    "manifest": (
        ("Print a manifest (or an index) as stored", "imgctl manifest ghcr.io/acme/app:v1.2.3"),
        (
            "Save the manifest a digest names",
            "imgctl manifest ghcr.io/acme/app@sha256:0123abcd > manifest.json",
        ),
    ),
    "ls": (
        ("List the tags of a repository", "imgctl ls ghcr.io/acme/app"),
        ("Print full references, for piping into copy", "imgctl ls ghcr.io/acme/app --full-ref"),
        ("The tags as JSON", "imgctl ls localhost:5001/myapp -o json"),
        ("List a registry's repositories (its /v2/_catalog)", "imgctl ls localhost:5001"),
    ),
    "append": (
        (
            "Add a layer to a base image and push the result",
            "imgctl append -b gcr.io/distroless/static:nonroot -f app.tar.gz "
            "-t registry.example.com/app:v1",
        ),
        (
            "An image of one layer, from scratch, for arm64",
            "imgctl append -f rootfs.tar -t registry.example.com/tools:v1 --platform linux/arm64",
        ),
    ),
    "token": (
        ("Print a token for scripts (cached until it expires)", "imgctl token"),
        (
            "A fresh token from a given issuer, as another user",
            "imgctl token --dex-url https://dex.example.com -u alice --no-cache",
        ),
    ),
    "promote": (
        (
            "Promote a tag from its default source to prod",
            "imgctl promote myapp:v1.2.3 --destination prod",
        ),
        (
            "Promote from staging, through a given server, as JSON",
            "imgctl promote myapp:v1.2.3 --source staging -d prod "
            "-s imgctl.example.com:9999 -o json",
        ),
        ("Promote a static web bundle", "imgctl promote spa:shop:1.4.0 -d prod"),
    ),
    "auth-check": (
        ("Who the server thinks you are, and where you may promote", "imgctl auth-check"),
        ("The same as JSON, as another user", "imgctl auth-check -u alice -o json"),
    ),
    "sign": (
        (
            "Sign an image's digest with a cosign key (password in COSIGN_PASSWORD)",
            "imgctl sign registry.example.com/app:v1 --key cosign.key",
        ),
        (
            "Sign with a KMS key and an annotation",
            "imgctl sign registry.example.com/app:v1 --key awskms:///alias/release -a env=prod",
        ),
        ("Sign keyless (Fulcio and Rekor)", "imgctl sign registry.example.com/app:v1 --keyless"),
    ),
    "verify": (
        (
            "Check an image's signatures against a public key",
            "imgctl verify registry.example.com/app:v1 --key cosign.pub",
        ),
        (
            "Accept either of two keys, as JSON",
            "imgctl verify registry.example.com/app:v1 --key cosign.pub --key next.pub -o json",
        ),
        (
            "Keyless: a certificate for this identity, from this issuer",
            "imgctl verify registry.example.com/app:v1 --certificate-identity ci@example.com "
            "--certificate-oidc-issuer https://token.actions.githubusercontent.com",
        ),
    ),
    "attestations": (
        (
            "List an image's attestations and whether they verify",
            "imgctl attestations registry.example.com/app:v1 --key cosign.pub",
        ),
        (
            "Only SLSA provenance, as JSON",
            "imgctl attestations registry.example.com/app:v1 --key cosign.pub "
            "--predicate-type slsaprovenance1 -o json",
        ),
    ),
    "attest": (
        (
            "Attach a vulnerability scan to an image's digest",
            "imgctl attest registry.example.com/app:v1 --key cosign.key "
            "--predicate scan.json --type vuln",
        ),
    ),
    "generate-key-pair": (
        ("Write cosign.key and cosign.pub", "imgctl generate-key-pair"),
        (
            "Write release.key and release.pub (password: $COSIGN_PASSWORD, else asked)",
            "imgctl generate-key-pair --output-key-prefix release",
        ),
    ),
    "server": (
        ("Serve gRPC on all interfaces", "imgctl server --bind-address 0.0.0.0:9999"),
        (
            "With a policy, tag watches and a signing key for promotions",
            "imgctl server --policy-file policy.yaml --watches watches.yaml --sign-key cosign.key",
        ),
        (
            "Serve TLS and require client certificates",
            "imgctl server --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem",
        ),
    ),
    "cip": (
        (
            "Dry run: what would be promoted (nothing is written)",
            "imgctl cip --thin-manifest-dir manifests/",
        ),
        (
            "Promote, checking the build signatures and signing the copies",
            "imgctl cip --thin-manifest-dir manifests/ --verify-key build.pub "
            "--confirm --sign-key release.key",
        ),
        (
            "Validate the manifests only (CI on the manifests repository)",
            "imgctl cip --thin-manifest-dir manifests/ --parse-only --strict",
        ),
        (
            "Snapshot a registry as an images.yaml",
            "imgctl cip --snapshot registry.example.com/prod",
        ),
    ),
    "cip replicate-signatures": (
        (
            "Dry run: which signatures the mirrors lack",
            "imgctl cip replicate-signatures --manifest promoter.yaml",
        ),
        (
            "Copy them, as JSON",
            "imgctl cip replicate-signatures --manifest promoter.yaml --confirm -o json",
        ),
    ),
    "demo": (
        ("Run the demo and stop everything at the end", "imgctl demo"),
        (
            "Keep it running to try the commands it prints (Ctrl-C stops it)",
            "imgctl demo --keep",
        ),
    ),
    "completion": (
        (
            "Install bash completion (or: source <(imgctl completion bash))",
            "imgctl completion bash > ~/.local/share/bash-completion/completions/imgctl",
        ),
        ("Install zsh completion", "imgctl completion zsh > ~/.zfunc/_imgctl"),
    ),
    "auth": (
        (
            "Which credentials imgctl would send to a registry",
            "imgctl auth explain registry.example.com/team/app:v1",
        ),
        ("Sign in with your SSH key", "imgctl auth login"),
    ),
    "auth explain": (
        (
            "Which credentials imgctl would send to a registry, and why",
            "imgctl auth explain registry.example.com/team/app:v1",
        ),
        ("The same as JSON", "imgctl auth explain ghcr.io/acme/app -o json"),
    ),
    "auth login": (
        ("Sign in with your SSH key", "imgctl auth login"),
        (
            "Sign in as alice at a given issuer with a given key",
            "imgctl auth login --dex-url http://127.0.0.1:5556 -u alice -f ~/.ssh/id_ed25519.pub",
        ),
    ),
    "auth logout": (
        ("Forget every cached token", "imgctl auth logout --all"),
        (
            "Forget alice's tokens for one issuer",
            "imgctl auth logout --dex-url https://dex.example.com -u alice",
        ),
    ),
    "idp": (
        (
            "Run the built-in issuer on loopback",
            "imgctl idp serve --config idp.yaml --address 127.0.0.1:5556",
        ),
        ("Rotate its signing key", "imgctl idp rotate-key --config idp.yaml"),
    ),
    "idp serve": (
        (
            "Run the issuer on loopback",
            "imgctl idp serve --config idp.yaml --address 127.0.0.1:5556",
        ),
        (
            "Serve it over TLS under its public name",
            "imgctl idp serve --config idp.yaml --address 0.0.0.0:5556 "
            "--issuer https://idp.example.com --tls-cert idp.pem --tls-key idp.key",
        ),
    ),
    "idp rotate-key": (
        ("Start signing with a new key", "imgctl idp rotate-key --config idp.yaml"),
    ),
    "catalog": (
        ("What is in prod", "imgctl catalog ls -e prod"),
        (
            "Serve the catalog API on all interfaces",
            "imgctl catalog serve --http-address 0.0.0.0:8080",
        ),
    ),
    "catalog ls": (
        (
            "Every image promoted to prod",
            "imgctl catalog ls -e prod --catalog-url http://imgctl.example.com:8080",
        ),
        ("One repository's images, as JSON", "imgctl catalog ls --name acme/app -o json"),
    ),
    "catalog get": (
        ("Show one image", "imgctl catalog get acme/app@sha256:0123abcd"),
        ("As JSON", "imgctl catalog get acme/app@sha256:0123abcd -o json"),
    ),
    "catalog put": (
        (
            "Record an image with two tags in prod",
            "imgctl catalog put acme/app@sha256:0123abcd --name acme/app --tag v1 --tag latest "
            "-e prod",
        ),
    ),
    "catalog rm": (
        ("Withdraw an image from staging", "imgctl catalog rm acme/app@sha256:0123abcd -e staging"),
        (
            "Withdraw it everywhere",
            "imgctl catalog rm acme/app@sha256:0123abcd --all-environments",
        ),
    ),
    "catalog import": (
        ("Check a file first, writing nothing", "imgctl catalog import catalog.json --dry-run"),
        (
            "Import a cip snapshot as prod's images into PostgreSQL",
            "imgctl catalog import snapshot.yaml -e prod "
            "--database-url postgresql://imgctl@db:5432/imgctl",
        ),
    ),
    "catalog serve": (
        (
            "Serve the catalog API and admission webhook, writes with tokens",
            "imgctl catalog serve --http-address 0.0.0.0:8080 --tokens-file tokens.yaml",
        ),
        (
            "Also require a signature for admission in prod",
            "imgctl catalog serve --require-signature prod=cosign.pub",
        ),
    ),
    "audit": (
        ("The latest audit events", "imgctl audit ls"),
        ("Denied promotions to prod, as JSON", "imgctl audit ls -e prod --result denied -o json"),
    ),
    "audit ls": (
        ("The latest 50 events", "imgctl audit ls"),
        (
            "Signed in as alice, the issuer learnt from the server",
            "imgctl audit ls --server localhost:9999 -u alice -f alice_ed25519",
        ),
        (
            "What alice did in March",
            "imgctl audit ls --user alice@example.com "
            "--since 2025-03-01T00:00:00Z --until 2025-04-01T00:00:00Z",
        ),
        (
            "Denied promotions to prod, as JSON",
            "imgctl audit ls -e prod --result denied -o json",
        ),
    ),
    "scan": (
        ("Scan every watch once and print the table", "imgctl scan --config watches.yaml --once"),
        ("Scan on the watches' intervals until Ctrl-C", "imgctl scan --config watches.yaml"),
        ("Ask a running server", "imgctl scan status --catalog-url http://127.0.0.1:8080"),
    ),
    "scan status": (
        ("The watches of a running server", "imgctl scan status"),
        (
            "As JSON, from another server",
            "imgctl scan status --catalog-url http://imgctl.example.com:8080 -o json",
        ),
    ),
    "registry": (
        ("Serve a registry from a directory", "imgctl registry serve --root ./registry"),
        (
            "Log in to a registry, the password (or token) from a file on stdin",
            "imgctl registry login ghcr.io -u octocat --password-stdin < token.txt",
        ),
    ),
    "registry login": (
        (
            "Log in, the password (or token) from stdin, into docker's config.json",
            "imgctl registry login ghcr.io -u octocat --password-stdin < token.txt",
        ),
        (
            "Save the login without asking the registry first (offline)",
            "imgctl registry login localhost:5000 -u ci --password-stdin --no-verify < pw.txt",
        ),
    ),
    "registry logout": (("Remove a registry's saved login", "imgctl registry logout ghcr.io"),),
    "registry serve": (
        (
            "Serve a registry from ./registry on port 5000",
            "imgctl registry serve --root ./registry --address 127.0.0.1:5000",
        ),
        (
            "Require Basic auth (bcrypt htpasswd)",
            "imgctl registry serve --root ./registry --htpasswd htpasswd",
        ),
    ),
    "version": (
        ("imgctl's version, commit and build date", "imgctl version"),
        ("With the server's version, as JSON", "imgctl version -s imgctl.example.com:9999 -o json"),
        ("Only the client, without asking any server", "imgctl version --client"),
    ),
}


def examples(path: str) -> tuple[tuple[str, str], ...]:
    """The examples of the command at ``path`` ("" for imgctl, "catalog ls"), none if unknown."""
    return EXAMPLES.get(path, ())
